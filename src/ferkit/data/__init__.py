"""Readers for FER data formats, splits and tensor augmentation; all return :class:`FaceData`."""

from .dataset import FaceData
from .fer2013 import read_fer2013
from .ferplus import FerPlusVotes, ferplus_facedata, majority_vote, read_ferplus, read_ferplus_data, vote_distribution
from .filenames import parse_ckplus, parse_jaffe, parse_kdef, read_kdef
from .folder import read_folder
from .images import load_gray
from .splits import stratified_split, subject_kfold, subject_split, usage_split

__all__ = [
    "FaceData",
    "FerPlusVotes",
    "ferplus_facedata",
    "load_gray",
    "majority_vote",
    "parse_ckplus",
    "parse_jaffe",
    "parse_kdef",
    "read_fer2013",
    "read_ferplus",
    "read_ferplus_data",
    "read_folder",
    "read_kdef",
    "stratified_split",
    "subject_kfold",
    "subject_split",
    "usage_split",
    "vote_distribution",
]
