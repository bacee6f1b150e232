"""Recordings: xu2023 and parker2022 readers, the synthetic mouse V1, and the clip dataset."""
from actstore.data.session import PARTS, Session, segment_lengths, split_labels

__all__ = ["PARTS", "Session", "segment_lengths", "split_labels"]
