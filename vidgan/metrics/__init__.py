"""Video metrics: Kinetics-400 I3D, FVD under a versioned protocol, and two companions.

    from vidgan.metrics import fvd, frechet_distance, load_i3d, PROTOCOL
    score = fvd(real, fake)                  # uint8 [N, T, H, W, 3] clip sets

A leaf package: it imports nothing from models, training or checkpoint.
"""
from vidgan.metrics.companions import content_distance, frame_fd
from vidgan.metrics.frechet import GaussianAccumulator, frechet_distance, gaussian_stats, sqrtm_psd, \
    trace_sqrt_product
from vidgan.metrics.fvd import PROTOCOL, PROTOCOL_VERSION, FeatureExtractor, fvd, fvd_from_stats, preprocess
from vidgan.metrics.i3d import I3D, kinetics400_labels, load_i3d
from vidgan.metrics.stats import SetStats
from vidgan.metrics.weights import cache_dir, resolve_weights

__all__ = ["fvd", "fvd_from_stats", "frechet_distance", "gaussian_stats", "sqrtm_psd", "trace_sqrt_product",
           "GaussianAccumulator", "FeatureExtractor", "SetStats", "PROTOCOL", "PROTOCOL_VERSION", "preprocess",
           "I3D", "load_i3d", "kinetics400_labels", "resolve_weights", "cache_dir", "content_distance",
           "frame_fd"]
