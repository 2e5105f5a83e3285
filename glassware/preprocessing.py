"""The one definition of how a picture becomes model input.

Training (cache build), calibration (representative data), export checks, the edge runtime and the ROS
node all call these functions, so an image is preprocessed bit-for-bit the same everywhere.

Model input is RGB, `size` (height, width), uint8 values 0..255 held as float32 or uint8. Scaling to
[0, 1] (VGG) or [-1, 1] (MobileNet) is the model's own first layer, recorded in the manifest as
`model_scaling`: an int8 model can then take raw pixels, and no consumer can scale twice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from glassware.errors import FrameFormatError, ImageDecodeError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

_RESIZE = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST, "cubic": cv2.INTER_CUBIC}

# encoding -> (channels, numpy dtype, conversion to RGB or None if already RGB)
ENCODINGS = {
    "rgb8": (3, np.uint8, None),
    "bgr8": (3, np.uint8, cv2.COLOR_BGR2RGB),
    "rgba8": (4, np.uint8, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, np.uint8, cv2.COLOR_BGRA2RGB),
    "mono8": (1, np.uint8, cv2.COLOR_GRAY2RGB),
    "8UC1": (1, np.uint8, cv2.COLOR_GRAY2RGB),
    "8UC3": (3, np.uint8, cv2.COLOR_BGR2RGB),  # OpenCV convention: BGR
    "mono16": (1, np.uint16, cv2.COLOR_GRAY2RGB),  # scaled to 8 bits first: mono16_to_mono8
    "yuv422": (2, np.uint8, cv2.COLOR_YUV2RGB_UYVY),  # ROS's name for UYVY (usb_cam "uyvy")
    "yuv422_yuy2": (2, np.uint8, cv2.COLOR_YUV2RGB_YUY2),  # YUYV (usb_cam "yuyv")
    # OpenCV names a Bayer pattern by its second row's middle pixels: ROS rggb is OpenCV's BG
    "bayer_rggb8": (1, np.uint8, cv2.COLOR_BayerBG2RGB),
    "bayer_bggr8": (1, np.uint8, cv2.COLOR_BayerRG2RGB),
    "bayer_gbrg8": (1, np.uint8, cv2.COLOR_BayerGR2RGB),
    "bayer_grbg8": (1, np.uint8, cv2.COLOR_BayerGB2RGB),
}
# Chroma-subsampled and mosaic frames are converted to RGB at full size: resizing first would mix their samples.
CONVERT_BEFORE_RESIZE = {name for name in ENCODINGS if name.startswith(("yuv422", "bayer_"))}


@dataclass(frozen=True)
class Preprocessing:
    """Recorded in every run and bundle; consumers rebuild it with `from_dict`."""

    height: int = 150
    width: int = 150
    color_order: str = "RGB"
    resize: str = "area"  # cv2.INTER_AREA: no aliasing when shrinking camera frames
    fit: str = "stretch"  # whole frame squashed to the model size, as the paper's flow_from_directory did
    input_range: tuple[int, int] = (0, 255)
    model_scaling: str = "x/255"  # done inside the model; "x/127.5-1" for MobileNet

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_range"] = list(self.input_range)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        d = dict(d)
        d["input_range"] = tuple(d.get("input_range", (0, 255)))
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown preprocessing keys: {sorted(unknown)}")
        spec = cls(**d)
        if spec.resize not in _RESIZE or spec.color_order != "RGB" or spec.fit != "stretch":
            raise ValueError(f"unsupported preprocessing: {d}")
        return spec


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3). Raises ImageDecodeError for unreadable files."""
    return cv2.cvtColor(_decode_bgr(_read_bytes(path), path), cv2.COLOR_BGR2RGB)


def decode_image(data: bytes | np.ndarray) -> np.ndarray:
    """Decode JPEG/PNG/BMP/WebP bytes to RGB uint8 (H, W, 3). Raises ImageDecodeError."""
    return cv2.cvtColor(_decode_bgr(data), cv2.COLOR_BGR2RGB)


def frame_to_rgb(frame: np.ndarray, encoding: str) -> np.ndarray:
    """Convert a raw camera frame with a declared encoding (ROS names) to RGB uint8 (H, W, 3)."""
    frame, code = _check_frame(frame, encoding)
    return np.ascontiguousarray(frame) if code is None else cv2.cvtColor(frame, code)


def resize(rgb: np.ndarray, spec: Preprocessing) -> np.ndarray:
    """Resize an image to the model size with the recorded method (channels untouched)."""
    if rgb.shape[:2] == (spec.height, spec.width):
        return np.ascontiguousarray(rgb)
    return cv2.resize(rgb, (spec.width, spec.height), interpolation=_RESIZE[spec.resize])


# The three entry points below resize *before* the colour conversion: resizing works per channel, and
# a channel permutation or gray->RGB copy commutes with it exactly, so the result is bit-for-bit the
# same as convert-then-resize while the conversion runs on 150x150 instead of the full frame.
# 4:2:2 and Bayer frames (CONVERT_BEFORE_RESIZE) are the exception: _check_frame converts them at full size.

def preprocess_file(path: str | Path, spec: Preprocessing) -> np.ndarray:
    """File -> model input (uint8, height x width x 3). The training cache is built with this."""
    return cv2.cvtColor(resize(_decode_bgr(_read_bytes(path), path), spec), cv2.COLOR_BGR2RGB)


def preprocess_bytes(data: bytes | np.ndarray, spec: Preprocessing) -> np.ndarray:
    """Encoded JPEG/PNG bytes -> model input (uint8, height x width x 3)."""
    return cv2.cvtColor(resize(_decode_bgr(data), spec), cv2.COLOR_BGR2RGB)


def preprocess_frame(frame: np.ndarray, encoding: str, spec: Preprocessing) -> np.ndarray:
    """Raw frame with a declared encoding -> model input (uint8, height x width x 3)."""
    frame, code = _check_frame(frame, encoding)
    small = resize(frame, spec)
    return np.ascontiguousarray(small) if code is None else cv2.cvtColor(small, code)


def _read_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ImageDecodeError(f"{path}: cannot read ({e.strerror or e})") from e


def _decode_bgr(data: bytes | np.ndarray, source: object = None) -> np.ndarray:
    where = f"{source}: " if source is not None else ""
    if isinstance(data, (bytes, bytearray, memoryview)):
        buf = np.frombuffer(data, np.uint8)
    else:
        buf = np.asarray(data, np.uint8).reshape(-1)
    if buf.size == 0:
        raise ImageDecodeError(f"{where}empty image data")
    try:
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as e:  # a header declaring more pixels than OPENCV_IO_MAX_IMAGE_PIXELS (glassware/__init__.py)
        reason = "declares too many pixels" if "MAX_IMAGE_PIXELS" in str(e) else str(e).strip().splitlines()[-1]
        raise ImageDecodeError(f"{where}not a decodable image ({buf.size} bytes: {reason})") from e
    if bgr is None:
        raise ImageDecodeError(f"{where}not a decodable image ({buf.size} bytes: truncated, corrupt or unknown format)")
    return bgr


def _check_frame(frame: np.ndarray, encoding: str) -> tuple[np.ndarray, int | None]:
    """Validate a raw frame against its encoding; return it as (H, W, C) uint8 and the cv2 code to RGB (None: it
    is RGB already), converted at full size where resizing first would be wrong."""
    if encoding not in ENCODINGS:
        raise FrameFormatError(f"unknown encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")
    channels, dtype, code = ENCODINGS[encoding]
    frame = np.asarray(frame)
    if frame.dtype != dtype:
        raise FrameFormatError(f"{encoding} frame must be {np.dtype(dtype).name}, got {frame.dtype}")
    if frame.ndim == 2 and channels == 1:
        frame = frame[:, :, None]
    if frame.ndim != 3 or frame.shape[2] != channels or frame.shape[0] < 1 or frame.shape[1] < 1:
        raise FrameFormatError(f"{encoding} frame must be (H, W, {channels}), got shape {frame.shape}")
    if encoding == "mono16":
        return mono16_to_mono8(frame), code
    if encoding in CONVERT_BEFORE_RESIZE:
        if frame.shape[0] < 2 or frame.shape[1] < 2 or frame.shape[1] % 2:
            raise FrameFormatError(f"{encoding} frame must be at least 2x2 with an even width, got {frame.shape[:2]}")
        return cv2.cvtColor(np.ascontiguousarray(frame), code), None
    return frame, code


def mono16_to_mono8(frame: np.ndarray, bits: int = 0) -> np.ndarray:
    """A 16-bit grey frame scaled to uint8 so that its full scale, 2**bits - 1, becomes 255. `bits` = 0 takes
    the bit depth from the frame's largest value (at least 8): a 10- or 12-bit camera's frames then keep their
    brightness, where keeping the high byte would leave them nearly black. Set `bits` for a scale that does not
    follow the scene (a dark 12-bit frame would otherwise pass for a 10-bit one)."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint16:
        raise FrameFormatError(f"mono16 frame must be uint16, got {frame.dtype}")
    bits = bits or max(8, int(frame.max(initial=0)).bit_length())
    return cv2.convertScaleAbs(frame, alpha=255.0 / (2**bits - 1))


def frame_from_buffer(data: bytes | memoryview, height: int, width: int, step: int, encoding: str) -> np.ndarray:
    """View a raw image buffer (ROS sensor_msgs/Image layout) as an array; raises FrameFormatError on mismatch."""
    if encoding not in ENCODINGS:
        raise FrameFormatError(f"unknown encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")
    channels, dtype, _ = ENCODINGS[encoding]
    row = width * channels * np.dtype(dtype).itemsize
    if height < 1 or width < 1:
        raise FrameFormatError(f"empty frame {width}x{height}")
    if step < row:
        raise FrameFormatError(f"step {step} < {row} bytes needed for a {width}-pixel {encoding} row")
    if len(data) != step * height:
        raise FrameFormatError(f"{len(data)} bytes, expected step*height = {step}*{height} = {step * height}")
    arr = np.frombuffer(data, np.uint8).reshape(height, step)[:, :row]
    return arr.view(dtype).reshape(height, width, channels)
