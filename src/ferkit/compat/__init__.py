"""Drop-in interfaces of other FER tools over ferkit's recognizer.

``from ferkit.compat import FER`` (fer's ``detect_emotions`` and ``top_emotion``) and ``from ferkit.compat import
DeepFace`` (deepface's ``analyze`` for emotion).
"""

from .deepface import DeepFace
from .fer import FER, face_dict

__all__ = ["FER", "DeepFace", "face_dict"]
