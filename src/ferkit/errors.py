"""The one exception type for problems a user can fix (bad paths, files, options)."""


class FerkitError(Exception):
    """A clear, user-facing error; the CLI prints its message and exits non-zero."""
