import cv2
import numpy as np
import pytest

from glassware.errors import FrameFormatError, ImageDecodeError
from glassware.preprocessing import (
    Preprocessing,
    decode_image,
    frame_from_buffer,
    mono16_to_mono8,
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


# --- camera encodings beyond RGB/BGR: each must give the model what the bgr8 frame of the same picture gives ---

def _bayer(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """The mosaic a Bayer sensor with `pattern` (ROS order: the 2x2 cell row by row, e.g. "rggb") records."""
    channel = {"r": 0, "g": 1, "b": 2}
    mosaic = np.zeros(rgb.shape[:2], np.uint8)
    for letter, (dy, dx) in zip(pattern, [(0, 0), (0, 1), (1, 0), (1, 1)]):
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, channel[letter]]
    return mosaic


def _as(encoding: str, bgr: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if encoding == "yuv422":
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_UYVY)
    if encoding == "yuv422_yuy2":
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_YUY2)
    return _bayer(rgb, encoding[len("bayer_"):-1])


@pytest.fixture
def scene():
    """A camera-like picture: smooth shapes and edges (a Bayer or 4:2:2 camera loses little on it)."""
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    img = cv2.resize(small, (640, 480), interpolation=cv2.INTER_CUBIC)
    cv2.circle(img, (320, 240), 120, (30, 200, 90), -1)
    return cv2.GaussianBlur(img, (5, 5), 0)


@pytest.mark.parametrize("encoding", ["yuv422", "yuv422_yuy2", "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8",
                                      "bayer_grbg8"])
def test_yuv_and_bayer_frames_give_the_model_what_bgr8_gives(encoding, scene):
    raw = _as(encoding, scene)
    reference = preprocess_frame(scene, "bgr8", SPEC).astype(int)
    out = preprocess_frame(raw, encoding, SPEC)
    assert out.shape == (150, 150, 3) and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - reference)
    assert diff.mean() < 2.0 and np.percentile(diff, 99) < 12, (diff.mean(), np.percentile(diff, 99))
    # the same from the ROS buffer layout (2 bytes a pixel for 4:2:2, 1 for a mosaic)
    step = raw.shape[1] * (2 if encoding.startswith("yuv") else 1)
    assert np.array_equal(frame_from_buffer(raw.tobytes(), 480, 640, step, encoding).reshape(raw.shape), raw)


def test_a_wrong_channel_order_would_show(scene):
    """The tolerance above separates a right conversion from a wrong one (rggb read as bggr swaps red and blue)."""
    wrong = preprocess_frame(_as("bayer_rggb8", scene), "bayer_bggr8", SPEC).astype(int)
    assert np.abs(wrong - preprocess_frame(scene, "bgr8", SPEC).astype(int)).mean() > 10


@pytest.mark.parametrize("bits", [10, 12, 16])
def test_mono16_is_scaled_by_its_bit_depth_not_cut_to_its_high_byte(bits, scene):
    grey = cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY)
    grey[0, 0] = 255  # a full-scale pixel, as a real scene has somewhere
    deep = (grey.astype(np.uint32) * (2**bits - 1) // 255).astype(np.uint16)
    by_range = preprocess_frame(deep, "mono16", SPEC)  # the depth from the frame's largest value
    assert np.abs(by_range.astype(int) - preprocess_frame(grey, "mono8", SPEC)).max() <= 1
    assert np.abs(mono16_to_mono8(deep, bits).astype(int) - grey).max() <= 1
    dark = (grey.astype(np.uint32) * (2**bits - 1) // 255 // 4).astype(np.uint16)  # a dark scene: use the known depth
    assert abs(int(mono16_to_mono8(dark, bits).mean()) - int(grey.mean()) // 4) <= 1


def test_packed_frames_with_odd_sizes_are_refused():
    with pytest.raises(FrameFormatError, match="even width"):
        preprocess_frame(np.zeros((4, 5, 2), np.uint8), "yuv422", SPEC)
    with pytest.raises(FrameFormatError, match="must be uint16"):
        mono16_to_mono8(np.zeros((4, 4), np.uint8))


def test_an_image_bomb_is_refused_before_it_is_decoded():
    """A few hundred bytes of JPEG whose header declares 20000 x 20000 (400 MP, under OpenCV's own 1 GP limit)
    or 65000 x 65000: refused as undecodable, without gigabytes allocated. In a fresh process, where glassware
    is imported before OpenCV, as in the node and the CLI."""
    import subprocess
    import sys

    code = """
import glassware, struct, cv2, numpy as np
from glassware.preprocessing import decode_image
from glassware.errors import ImageDecodeError
jpeg = cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))[1].tobytes()
sof = jpeg.index(b"\\xff\\xc0")
for side in (20000, 65000):
    data = bytearray(jpeg); data[sof + 5:sof + 9] = struct.pack(">HH", side, side)
    try:
        decode_image(bytes(data)); print(side, "decoded")
    except ImageDecodeError as e:
        print(side, e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.count("declares too many pixels") == 2, out
