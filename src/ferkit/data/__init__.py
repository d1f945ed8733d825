"""Readers for FER data formats, splits and tensor augmentation; all return :class:`FaceData`."""

from .dataset import FaceData

__all__ = ["FaceData"]
