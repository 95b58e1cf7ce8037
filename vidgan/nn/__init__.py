"""Layers built on vidgan.ops: equalized-lr linear/conv, modulated convs, FIR resampling, D blocks."""
from vidgan.nn.blocks import DownBlock2d, DownBlock3d, MinibatchStd
from vidgan.nn.equalized import EqualConv2d, EqualConv3d, EqualLinear, bias_act, row_exact_linear
from vidgan.nn.modulated import ModulatedConv2d, StyleConv, ToRGB
from vidgan.nn.resample import Downsample2d, Upsample2d, VideoDownsample, down_padding

__all__ = ["EqualLinear", "EqualConv2d", "EqualConv3d", "bias_act", "row_exact_linear", "ModulatedConv2d", "StyleConv",
           "ToRGB", "Downsample2d", "Upsample2d", "VideoDownsample", "down_padding", "MinibatchStd", "DownBlock2d",
           "DownBlock3d"]
