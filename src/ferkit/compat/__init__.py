"""Drop-in interfaces of other FER tools over ferkit's recognizer (``from ferkit.compat import FER``)."""

from .fer import FER, face_dict

__all__ = ["FER", "face_dict"]
