"""The temporal generator, the frame, clip and pair discriminators, the content encoder, and their config."""
from vidgan.models.config import ModelConfig
from vidgan.models.discriminators import ClipDiscriminator, ContentEncoder, FrameDiscriminator, PairDiscriminator
from vidgan.models.generator import TemporalGenerator

__all__ = ["ModelConfig", "TemporalGenerator", "FrameDiscriminator", "ClipDiscriminator",
           "PairDiscriminator", "ContentEncoder"]
