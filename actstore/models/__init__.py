"""The twin zoo: eight torchvision encoders inside one convolutional-recurrent DigitalTwin."""
from actstore.models.checkpoint import load_checkpoint, save_checkpoint
from actstore.models.encoders import build_encoder
from actstore.models.twin import DigitalTwin, build_twin

__all__ = ["DigitalTwin", "build_twin", "build_encoder", "save_checkpoint", "load_checkpoint"]
