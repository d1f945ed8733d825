"""``python -m ferkit.cli ...``: the ``ferkit`` command."""

import sys

from . import main

sys.exit(main())
