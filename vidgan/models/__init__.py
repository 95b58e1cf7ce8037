"""The temporal generator, the frame, clip and pair discriminators, and their config."""
from vidgan.models.config import ModelConfig
from vidgan.models.discriminators import ClipDiscriminator, FrameDiscriminator, PairDiscriminator
from vidgan.models.generator import TemporalGenerator

__all__ = ["ModelConfig", "TemporalGenerator", "FrameDiscriminator", "ClipDiscriminator",
           "PairDiscriminator"]
