"""Data: folders of videos with sound, clip stores prepared from them, one-file reads, the
mp4/PNG writers and the built-in synthetic audio-visual task (its scores: mmfast.eval.synthetic).

Tensors everywhere: video [F, 3, H, W] float32 in [-1, 1]; audio [1, L] float32 in [-1, 1], mono.
"""

from mmfast.data.folder import VideoFolderDataset
from mmfast.data.prepare_store import prepare
from mmfast.data.preview import write_preview
from mmfast.data.probe import MediaError, MediaInfo, MediaWarning, StreamSpan, probe
from mmfast.data.read import read_media
from mmfast.data.store import ClipStore, is_store
from mmfast.data.synthetic import SyntheticAVDataset
from mmfast.data.write import write_clip

__all__ = [
    "ClipStore",
    "MediaError",
    "MediaInfo",
    "MediaWarning",
    "StreamSpan",
    "SyntheticAVDataset",
    "VideoFolderDataset",
    "is_store",
    "prepare",
    "probe",
    "read_media",
    "write_clip",
    "write_preview",
]
