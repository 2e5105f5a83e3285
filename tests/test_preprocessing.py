import cv2
import numpy as np
import pytest

from glassware.errors import FrameFormatError, ImageDecodeError
from glassware.preprocessing import (
    Preprocessing,
    decode_image,
    frame_from_buffer,
    preprocess_bytes,
    preprocess_file,
    preprocess_frame,
    resize,
)

SPEC = Preprocessing()


@pytest.fixture
def bgr():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (7, 7), 0)
    return img


def test_every_entry_point_gives_the_same_pixels(bgr, tmp_path):
    ok, jpg = cv2.imencode(".jpg", bgr)
    (tmp_path / "x.jpg").write_bytes(jpg.tobytes())
    reference = resize(decode_image(jpg.tobytes()), SPEC)  # convert first, then resize
    assert reference.shape == (150, 150, 3) and reference.dtype == np.uint8
    decoded_bgr = cv2.imdecode(jpg, cv2.IMREAD_COLOR)
    assert np.array_equal(preprocess_file(tmp_path / "x.jpg", SPEC), reference)
    assert np.array_equal(preprocess_bytes(jpg.tobytes(), SPEC), reference)
    assert np.array_equal(preprocess_frame(decoded_bgr, "bgr8", SPEC), reference)
    rgb = cv2.cvtColor(decoded_bgr, cv2.COLOR_BGR2RGB)
    assert np.array_equal(preprocess_frame(rgb, "rgb8", SPEC), reference)
    assert np.array_equal(preprocess_frame(cv2.cvtColor(decoded_bgr, cv2.COLOR_BGR2BGRA), "bgra8", SPEC), reference)


def test_bgr_and_rgb_are_not_confused(bgr):
    a = preprocess_frame(bgr, "bgr8", SPEC)
    b = preprocess_frame(bgr, "rgb8", SPEC)
    assert np.array_equal(a, b[:, :, ::-1])


@pytest.mark.parametrize("data", [b"", b"\xff\xd8\xff\xe0garbage", b"not an image"])
def test_bad_bytes_raise_decode_error(data):
    with pytest.raises(ImageDecodeError):
        preprocess_bytes(data, SPEC)


def test_truncated_jpeg_raises_or_decodes_partially(bgr):
    ok, jpg = cv2.imencode(".jpg", bgr)
    with pytest.raises(ImageDecodeError):
        preprocess_bytes(jpg.tobytes()[:200], SPEC)


def test_frame_checks(bgr):
    with pytest.raises(FrameFormatError, match="unknown encoding"):
        preprocess_frame(bgr, "yuv422_weird", SPEC)
    with pytest.raises(FrameFormatError, match="must be"):
        preprocess_frame(bgr[:, :, :2], "bgr8", SPEC)
    with pytest.raises(FrameFormatError, match="expected step"):
        frame_from_buffer(bgr.tobytes()[:-1], 480, 640, 1920, "bgr8")
    with pytest.raises(FrameFormatError, match="step"):
        frame_from_buffer(bgr.tobytes(), 480, 640, 100, "bgr8")
    padded = np.zeros((480, 1936), np.uint8)
    padded[:, :1920] = bgr.reshape(480, 1920)
    assert np.array_equal(frame_from_buffer(padded.tobytes(), 480, 640, 1936, "bgr8"), bgr)


def test_spec_round_trip_and_rejects_unknown():
    assert Preprocessing.from_dict(SPEC.to_dict()) == SPEC
    with pytest.raises(ValueError):
        Preprocessing.from_dict({**SPEC.to_dict(), "resize": "magic"})
    with pytest.raises(ValueError):
        Preprocessing.from_dict({**SPEC.to_dict(), "mean": 0.5})
