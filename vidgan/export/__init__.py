"""Frames out of vidgan: video and image files (encode) and arrangements of clips (layout).

    frames  input checks shared by both: arrays/tensors/iterables -> uint8 [H, W, 3] frames
    layout  to_uint8, make_grid, contact_sheet, upscale_nearest: arrays in, arrays out
    encode  write_video (MP4/WebM/GIF/PNG folder), write_image, check_output: atomic files
    ffmpeg  the raw-frame pipe into ffmpeg: its messages kept, its errno reported on failure

A leaf package: it imports numpy, Pillow, imageio-ffmpeg (and torch only for torch input), never
vidgan's models, training or checkpoints.
"""
from vidgan.export.encode import (DEFAULT_CRF, FRAME_NAME, VIDEO_FORMATS, X264_PRESETS, check_output,
                                  write_image, write_video)
from vidgan.export.layout import contact_sheet, make_grid, to_uint8, upscale_nearest

__all__ = ["write_video", "check_output", "write_image", "to_uint8", "make_grid", "contact_sheet",
           "upscale_nearest", "VIDEO_FORMATS", "DEFAULT_CRF",
           "X264_PRESETS", "FRAME_NAME"]
