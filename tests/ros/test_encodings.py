"""The cameras people own: usb_cam's 4:2:2 (yuv422 = UYVY, yuv422_yuy2 = YUYV), machine-vision Bayer mosaics and
10/12-bit mono16, over DDS, each against the bgr8 (or mono8) frame of the same picture."""

from __future__ import annotations

import array

import cv2
import numpy as np
import pytest

from ros_harness import header

pytestmark = pytest.mark.ros
BAYER = {"rggb": (0, 1, 1, 2), "bggr": (2, 1, 1, 0), "gbrg": (1, 2, 0, 1), "grbg": (1, 0, 2, 1)}  # RGB channel per cell


def _raw(bgr: np.ndarray, encoding: str) -> np.ndarray:
    if encoding == "yuv422":
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_UYVY)
    if encoding == "yuv422_yuy2":
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_YUY2)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    mosaic = np.zeros(bgr.shape[:2], np.uint8)
    for channel, (dy, dx) in zip(BAYER[encoding[6:10]], [(0, 0), (0, 1), (1, 0), (1, 1)]):
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, channel]
    return mosaic


def _message(pixels: np.ndarray, encoding: str, probe):
    from sensor_msgs.msg import Image

    height, width = pixels.shape[:2]
    return Image(header=header(probe), height=height, width=width, encoding=encoding, is_bigendian=0,
                 step=pixels.nbytes // height, data=array.array("B", np.ascontiguousarray(pixels).tobytes()))


def _classified(node, msg):
    node.publisher.publish(msg)
    out = node.classification_for(msg.header.stamp)
    assert out is not None, f"no result for {msg.encoding}\n{node.process.output()}"
    return out


@pytest.mark.parametrize("encoding", ["yuv422", "yuv422_yuy2", "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8",
                                      "bayer_grbg8"])
def test_yuv_and_bayer_cameras_classify_like_bgr8(encoding, raw_node, probe, class_frames, reference):
    from glassware_vision.messages import image_msg

    for _, bgr in class_frames[:2]:
        bgr = cv2.GaussianBlur(bgr, (5, 5), 0)  # a camera's optics: no detail finer than its mosaic
        raw = _raw(bgr, encoding)
        expected = np.array(_classified(raw_node, image_msg(bgr, header(probe))).scores)
        out = _classified(raw_node, _message(raw, encoding, probe))
        error = np.abs(np.array(out.scores) - expected).max()
        # The test bundle's scores hardly vary between pictures, so this checks the node's wiring; that each
        # layout is read right is checked pixel by pixel in tests/test_preprocessing.py.
        assert out.raw_label == reference.class_names[int(expected.argmax())] and error <= 0.02


@pytest.mark.parametrize("bits", [10, 12])
def test_deep_mono16_classifies_like_mono8_with_and_without_its_bit_depth(bits, raw_node, probe, class_frames):
    grey = cv2.cvtColor(class_frames[0][1], cv2.COLOR_BGR2GRAY)
    grey[0, 0] = 255  # full scale somewhere in the picture
    deep = (grey.astype(np.uint32) * (2**bits - 1) // 255).astype(np.uint16)
    expected = _classified(raw_node, _message(grey, "mono8", probe))
    try:
        for depth in (0, bits):  # from the frame's range, then the parameter
            assert raw_node.set_parameters(probe, mono16_bits=depth)[0].successful
            out = _classified(raw_node, _message(deep, "mono16", probe))
            assert out.raw_label == expected.raw_label
            assert np.abs(np.array(out.scores) - np.array(expected.scores)).max() <= 0.02
    finally:
        raw_node.set_parameters(probe, mono16_bits=0)
