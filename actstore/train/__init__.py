"""Training the twin zoo (design 6.1) and scoring its neural prediction; `train_zoo` is the entry point."""
from actstore.train.zoo import train_zoo

__all__ = ["train_zoo"]
