"""The temporal generator, the frame and clip discriminators, and their config."""
from vidgan.models.config import ModelConfig
from vidgan.models.discriminators import ClipDiscriminator, FrameDiscriminator
from vidgan.models.generator import TemporalGenerator

__all__ = ["ModelConfig", "TemporalGenerator", "FrameDiscriminator", "ClipDiscriminator"]
