"""Conversions between ROS messages and arrays; the only place that knows sensor_msgs layouts."""

from __future__ import annotations

import array
import sys
from typing import NamedTuple

import cv2
import numpy as np
from glassware.preprocessing import decode_image, frame_from_buffer, frame_to_rgb
from glassware_vision_msgs.msg import Classification
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header


def frame_of(msg: Image) -> np.ndarray:
    """The pixels of a sensor_msgs/Image as an (H, W, C) array; raises FrameFormatError on a malformed message."""
    frame = frame_from_buffer(msg.data, msg.height, msg.width, msg.step, msg.encoding)
    if frame.dtype.itemsize > 1 and bool(msg.is_bigendian) != (sys.byteorder == "big"):
        frame = frame.byteswap()
    return frame


def bgr_of(msg: Image | CompressedImage) -> np.ndarray:
    """Any supported image message as BGR uint8, for drawing and re-encoding."""
    if isinstance(msg, CompressedImage):
        return bgr_of_frame(decode_image(msg.data), "rgb8")
    return bgr_of_frame(frame_of(msg), msg.encoding)


def bgr_of_frame(frame: np.ndarray, encoding: str) -> np.ndarray:
    """A raw frame of any supported encoding as BGR uint8."""
    return cv2.cvtColor(frame_to_rgb(frame, encoding), cv2.COLOR_RGB2BGR)


def image_msg(bgr: np.ndarray, header: Header) -> Image:
    """A bgr8 sensor_msgs/Image holding `bgr` (copied once, straight into the message buffer)."""
    height, width = bgr.shape[:2]
    return Image(header=header, height=height, width=width, encoding="bgr8", is_bigendian=0,
                 step=width * 3, data=array.array("B", np.ascontiguousarray(bgr).tobytes()))


def compressed_msg(bgr: np.ndarray, header: Header, quality: int = 90) -> CompressedImage:
    """A JPEG sensor_msgs/CompressedImage of `bgr`."""
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for a frame of shape {bgr.shape}")
    return CompressedImage(header=header, format="jpeg", data=array.array("B", jpeg.tobytes()))


class Decision(NamedTuple):
    """What the node answers for one frame (smoothed or not), beside the frame's own prediction."""

    label: str  # a class name or "unknown"
    confidence: float
    accepted: bool
    threshold: float  # of the class the decision is about
    smoothed: bool
    stale: bool  # older than max_frame_age_ms, or without a stamp: never accepted
    age_ms: float  # clock - header stamp when decided; NaN without a stamp


def classification_msg(header: Header, prediction, decision: Decision, class_names: list[str], bundle_id: str,
                       model_format: str) -> Classification:
    """The Classification of one frame: the decision, and the frame's own scores."""
    raw_index = int(np.argmax(prediction.scores))
    return Classification(
        header=header,
        label=decision.label,
        confidence=float(decision.confidence),
        accepted=bool(decision.accepted),
        threshold=float(decision.threshold),
        smoothed=decision.smoothed,
        stale=decision.stale,
        frame_age_ms=float(decision.age_ms),
        raw_label=class_names[raw_index],
        raw_confidence=float(prediction.scores[raw_index]),
        novelty=float(prediction.novelty),
        refused=bool(prediction.refused),
        class_names=class_names,
        scores=array.array("f", np.asarray(prediction.scores, np.float32).tobytes()),
        preprocess_ms=float(prediction.preprocess_ms),
        inference_ms=float(prediction.inference_ms),
        bundle_id=bundle_id,
        model_format=model_format,
    )


def draw_label(bgr: np.ndarray, text: str, accepted: bool) -> np.ndarray:
    """A copy of `bgr` with `text` in a banner at the top: green if accepted, orange if the model abstained."""
    out = bgr.copy()
    scale = max(out.shape[1] / 640.0, 0.4)
    thickness = max(int(round(2 * scale)), 1)
    (w, h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    cv2.rectangle(out, (0, 0), (w + 12, h + baseline + 12), (0, 0, 0), cv2.FILLED)
    colour = (0, 200, 0) if accepted else (0, 140, 255)
    cv2.putText(out, text, (6, h + 6), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
    return out
