"""Synthetic images that are not glassware: the open-set set (`render_openset` for one image, `write_openset`
for a folder of JPEGs), to check that the classifier's open-set score refuses what it was never trained on
instead of calling it a flask, `other` or `background`.

Six kinds, each varied within itself:
- `texture`: natural surfaces from multi-octave noise: gravel, sand, wood grain, woven fabric, marble;
- `pattern`: checkerboards, stripes at angles, dots, concentric rings, colour gradients, tiles;
- `text`: pages, signs, terminal screens and scattered words in the Hershey fonts, some turned;
- `clutter`: a desk of overlapping shapes in many colours, some with shadows;
- `scene`: the lab or stress scene of `synthetic.scene` with no glassware but another object in it (a block,
  a ball, a tool, a hand or glove): the nearest miss, filmed by the same light and camera as the training set;
- `noise`: bad frames: sensor noise, nearly black, blown out, motion-smeared, torn by a decoder.

The flat kinds (texture, pattern, text, clutter) are then photographed: uneven light, exposure, sometimes a
tilt or defocus, sensor noise. Without that they would differ from camera frames by their clean pixels alone,
and a score could refuse them for the wrong reason.

Every image has its own random generator, seeded by (seed, kind, index) in a stream of its own: a folder is
the same bytes for the same arguments, and a scene never repeats the background of a glassware image of the
same seed. Pictures are drawn in OpenCV's channel order (BGR), like the scenes; `render_openset` returns RGB
like `images.render`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from glassware.errors import SynthesisError
from glassware.synthetic.images import _refuse_strays, check, contact_sheet
from glassware.synthetic.scene import DOMAINS, compose, draw_scene

KINDS = ("texture", "pattern", "text", "clutter", "scene", "noise")
SUMMARY = "openset.json"
_STREAM = 0x6F70656E  # "open": keeps these generators apart from the glassware images of the same seed
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
          cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
          cv2.FONT_HERSHEY_SCRIPT_COMPLEX)


def render_openset(kind: str, rng: np.random.Generator, width: int = 640, height: int = 480,
                   domain: str | None = None) -> np.ndarray:
    """One image of `kind` (see KINDS) that shows no glassware: RGB uint8 (height, width, 3). `domain` sets
    the scene kind's domain ("lab" or "stress"; None: either, at random); the other kinds have none."""
    _check_kind(kind)
    check(width=width, height=height, domain=domain)
    if domain is not None and kind != "scene":
        raise SynthesisError(f"only the scene kind has a domain, not {kind!r}")
    return cv2.cvtColor(_render(kind, rng, width, height, domain)[0], cv2.COLOR_BGR2RGB)


def write_openset(out: str | Path, per_kind: int = 40, seed: int = 0, width: int = 640, height: int = 480,
                  quality: int = 90) -> dict:
    """Write OUT/<kind>/<kind>_<seed>_<i>.jpg for every kind, OUT/contact_sheet.png and OUT/openset.json.
    Scenes alternate between the lab and the stress domain; stress scenes keep their camera's lower JPEG
    quality (capped at `quality`). Returns the summary written to openset.json. Image i of a kind is the same
    whatever `per_kind`."""
    check(width=width, height=height, seed=seed, quality=quality)
    _check_per_kind(per_kind)
    out = Path(out)
    _refuse_foreign(out)
    _refuse_strays(out, seed, {kind: per_kind for kind in KINDS})
    for kind in KINDS:
        (out / kind).mkdir(parents=True, exist_ok=True)

    from tqdm import tqdm

    start, written = time.perf_counter(), 0
    with tqdm(total=per_kind * len(KINDS), desc="synth-openset", unit="img", file=sys.stderr) as bar:
        for k, kind in enumerate(KINDS):
            for i in range(per_kind):
                domain = DOMAINS[i % len(DOMAINS)] if kind == "scene" else None
                bgr, camera_quality = _render(kind, image_rng(seed, k, i), width, height, domain)
                q = quality if camera_quality is None else min(quality, camera_quality)
                written += _write_jpeg(out / kind / f"{kind}_{seed}_{i}.jpg", bgr, q)
                bar.update(1)
    seconds = time.perf_counter() - start

    total = per_kind * len(KINDS)
    sheet = contact_sheet(out, list(KINDS), f"open-set images (not glassware), seed {seed}, {width}x{height}")
    summary = {
        "schema": "glassware-openset/1",
        "seed": seed,
        "width": width,
        "height": height,
        "quality": quality,
        "kinds": list(KINDS),
        "counts": {kind: per_kind for kind in KINDS},
        "total": total,
        "bytes": written,
        "seconds": round(seconds, 3),
        "images_per_second": round(total / max(seconds, 1e-9), 1),
        "contact_sheet": sheet.name,
    }
    (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def image_rng(seed: int, kind_index: int, index: int) -> np.random.Generator:
    """The generator of one open-set image: independent of every other image and of the glassware images."""
    return np.random.default_rng(np.random.SeedSequence([seed, _STREAM, kind_index, index]))


# --- checks ---------------------------------------------------------------------------------------------

def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise SynthesisError(f"unknown open-set kind {kind!r}; kinds: {', '.join(KINDS)}")


def _check_per_kind(per_kind: int) -> None:
    if isinstance(per_kind, bool) or not isinstance(per_kind, (int, np.integer)) or per_kind < 1:
        raise SynthesisError(f"per-kind must be an integer of at least 1, got {per_kind!r}")


def _refuse_foreign(out: Path) -> None:
    """Refuse a folder holding anything synth-openset does not write: a dataset or other work would be mixed
    with (or mistaken for) the open-set images. A folder of an earlier or interrupted run passes here; its
    images must then all be ones this run rewrites (`_refuse_strays`)."""
    if out.exists() and not out.is_dir():
        raise SynthesisError(f"{out} exists and is not a folder")
    if not out.is_dir():
        return
    ours = {*KINDS, SUMMARY, "contact_sheet.png"}
    foreign = sorted(p.name for p in out.iterdir() if p.name not in ours or p.is_dir() != (p.name in KINDS))
    if foreign:
        raise SynthesisError(f"{out} is not empty and is not an open-set folder (it holds {foreign[0]!r}, "
                             f"which synth-openset does not write): use an empty or new folder")


def _write_jpeg(path: Path, bgr: np.ndarray, quality: int) -> int:
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise SynthesisError(f"JPEG encoding failed for {path.name}")
    path.write_bytes(data.tobytes())
    return data.size


def _render(kind, rng, width, height, domain) -> tuple[np.ndarray, int | None]:
    """(BGR picture, the camera's JPEG quality or None)."""
    if kind == "scene":
        return _scene_with_object(rng, width, height, domain)
    if kind == "noise":
        return _bad_frame(rng, width, height), None
    flat = {"texture": _texture, "pattern": _pattern, "text": _text, "clutter": _clutter}[kind]
    return _photograph(flat(rng, width, height), rng), None


# --- colour and coordinate helpers -----------------------------------------------------------------------

def _hsv(hue, sat, val) -> np.ndarray:
    """BGR colours (floats 0..255, shape (..., 3)) from hue in degrees and saturation, value in 0..1; numbers
    or arrays, converted in one call (a call per stone would cost more than drawing the stones)."""
    hue, sat, val = np.broadcast_arrays(np.mod(hue, 360), np.clip(sat, 0, 1), np.clip(val, 0, 1))
    hsv = np.stack([hue, sat, val], -1).astype(np.float32)
    return cv2.cvtColor(hsv.reshape(-1, 1, 3), cv2.COLOR_HSV2BGR).reshape(hsv.shape) * 255


def _random_color(rng, sat=(0.0, 1.0), val=(0.1, 1.0)) -> np.ndarray:
    return _hsv(rng.uniform(0, 360), rng.uniform(*sat), rng.uniform(*val))


def _ints(color) -> tuple[int, int, int]:
    """A colour as cv2's drawing functions take it."""
    return tuple(int(c) for c in np.clip(color, 0, 255))


def _palette(rng, n: int) -> np.ndarray:
    """n random colours, sometimes all of one hue family (as a designer would pick), else anything."""
    if rng.random() < 0.4:
        return _hsv(rng.uniform(0, 360) + rng.uniform(-30, 30, n), rng.uniform(0.2, 1, n), rng.uniform(0.2, 1, n))
    return _hsv(rng.uniform(0, 360, n), rng.uniform(0, 1, n), rng.uniform(0.1, 1, n))


def _lookup(index: np.ndarray, table: np.ndarray) -> np.ndarray:
    """BGR image whose pixel is table[index] (index uint8 HxW, table up to 256 colours): one cv2.LUT, several
    times faster than numpy's fancy indexing on a whole frame."""
    lut = np.zeros((1, 256, 3), np.uint8)
    lut[0, :len(table)] = np.clip(table, 0, 255)
    return cv2.LUT(cv2.merge([index, index, index]), lut)


def _colorize(t: np.ndarray, stops) -> np.ndarray:
    """BGR image from a field t in 0..1 (float32 HxW) through evenly spaced colour stops."""
    stops = np.asarray(stops, np.float64)
    at = np.linspace(0, 1, len(stops))
    levels = np.linspace(0, 1, 256)
    table = np.stack([np.interp(levels, at, stops[:, c]) for c in range(3)], 1)
    return _lookup(cv2.convertScaleAbs(t, alpha=255), table)


def _unit(field: np.ndarray) -> np.ndarray:
    """The field stretched to 0..1."""
    return cv2.normalize(field, None, 0, 1, cv2.NORM_MINMAX)


def _fractal(rng, width: int, height: int, cells: float, octaves: int, persistence: float = 0.5,
             stretch: float = 1.0) -> np.ndarray:
    """Multi-octave value noise in 0..1 (float32 HxW): random grids of `cells` across, doubling each octave,
    magnified and summed. `stretch` > 1 makes the features that much longer along x (grain, fibres). Summed at
    4 pixels per finest cell and magnified once: the smooth sum has no detail that full size would add."""
    finest = cells * 2 ** (octaves - 1)
    scale = min(1.0, 4 * finest / width)
    w, h = max(2, round(width * scale)), max(2, round(height * scale))
    total = np.zeros((h, w), np.float32)
    amplitude = 1.0
    for octave in range(octaves):
        n = cells * 2 ** octave
        grid = rng.standard_normal((max(2, round(n * height / width)), max(2, round(n / stretch)))).astype(np.float32)
        total = cv2.scaleAdd(cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC), amplitude, total)
        amplitude *= persistence
    if (w, h) != (width, height):
        total = cv2.resize(total, (width, height), interpolation=cv2.INTER_LINEAR)
    return _unit(total)


@lru_cache(maxsize=4)
def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel x and y (float32 HxW), shared read-only between images of one size."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x.flags.writeable = y.flags.writeable = False
    return x, y


def _turned(rng, width: int, height: int, angle: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (u, v) turned by `angle` degrees (random if None) about the centre, in pixels at
    640 wide, so a pattern keeps its look at any frame size."""
    x, y = _grid(width, height)
    a = math.radians(rng.uniform(0, 180) if angle is None else angle)
    k = 640 / width
    c, s = math.cos(a) * k, math.sin(a) * k
    ox, oy = rng.uniform(0, 1000, 2)
    u = x * c + y * s + (ox - (width * c + height * s) / 2)
    v = y * c - x * s + (oy - (height * c - width * s) / 2)
    return u, v


def _scaled(width: int, value: float) -> float:
    """A length in pixels at 640 wide, at this frame width."""
    return value * width / 640


# --- texture --------------------------------------------------------------------------------------------

def _texture(rng, width, height) -> np.ndarray:
    """A natural surface seen close up; which one is random."""
    return (_gravel, _sand, _wood, _fabric, _marble)[rng.integers(5)](rng, width, height)


def _earthy(rng) -> tuple[float, float]:
    """(hue, saturation) of a natural material: mostly browns and greys, sometimes any colour."""
    if rng.random() < 0.3:
        return rng.uniform(0, 360), rng.uniform(0.2, 0.8)
    return rng.uniform(15, 50), rng.uniform(0.05, 0.5)


def _gravel(rng, width, height) -> np.ndarray:
    """Stones of many sizes and shades over dark grit, each with a shadow below it."""
    hue, sat = _earthy(rng)
    img = _colorize(_fractal(rng, width, height, 8, 4), [_hsv(hue, sat, 0.08), _hsv(hue, sat, 0.35)])
    size = _scaled(width, rng.uniform(9, 24))
    n = int(min(900, width * height / (size * size) * rng.uniform(0.6, 1.2)))
    centres = rng.uniform(0, 1, (n, 2)) * (width, height)
    axes = size * rng.uniform(0.4, 1.0, (n, 2))
    angles = rng.uniform(0, 180, n)
    shades = _hsv(hue + rng.uniform(-25, 25, n), sat * rng.uniform(0.3, 1.5, n), rng.uniform(0.25, 0.95, n))
    drop = max(1, round(size / 6))
    for (x, y), (a, b), angle, shade in zip(centres.tolist(), axes.tolist(), angles.tolist(), shades.tolist()):
        center, ab = (round(x), round(y)), (max(1, round(a)), max(1, round(b)))
        cv2.ellipse(img, (center[0] + drop, center[1] + drop), ab, angle, 0, 360, (10, 10, 10), -1)
        cv2.ellipse(img, center, ab, angle, 0, 360, _ints(shade), -1, cv2.LINE_AA)
    return img


def _sand(rng, width, height) -> np.ndarray:
    """Fine grain over soft dunes, sometimes with wind ripples."""
    hue, sat = _earthy(rng)
    u, _ = _turned(rng, width, height)
    field = 0.6 * _fractal(rng, width, height, 2, 3)
    if rng.random() < 0.6:
        period = rng.uniform(12, 40)
        field += 0.25 * (0.5 + 0.5 * np.sin(u * (2 * np.pi / period) + 6 * _fractal(rng, width, height, 3, 2)))
    grain = cv2.GaussianBlur(rng.random((height, width), dtype=np.float32), (0, 0), _scaled(width, 0.7))
    t = _unit(field + rng.uniform(0.2, 0.5) * grain)
    return _colorize(t, [_hsv(hue, sat, rng.uniform(0.3, 0.5)), _hsv(hue, sat * 0.8, rng.uniform(0.7, 0.95))])


def _wood(rng, width, height) -> np.ndarray:
    """Planks with growth rings cut lengthwise and fine fibres along the grain. Drawn with the grain along x
    (the noise is stretched that way), then stood up for vertical planks."""
    upright = rng.random() < 0.5
    if upright:
        width, height = height, width
    hue, sat = _earthy(rng)
    u, v = _turned(rng, width, height, rng.normal(0, 6))
    plank = rng.uniform(60, 200)
    row = np.floor(v / plank)
    # Each plank is cut lengthwise from a log: its rings are distances from the log's axis, which runs at a
    # slowly changing depth under the cut (the arches of flat-sawn wood), wobbling as trees grow.
    axis = (row + 0.5 + 0.4 * np.sin(row * rng.uniform(10, 100))) * plank
    depth = rng.uniform(0, 60) + u * rng.uniform(-0.06, 0.06) + np.cos(row * rng.uniform(10, 100)) * 40
    wobble = _fractal(rng, width, height, 2, 3, stretch=6) * rng.uniform(3, 10)
    rings = _wrap(cv2.magnitude(v - axis, depth) * rng.uniform(0.05, 0.14) + wobble * 0.1 + row * 0.37, 1.0)
    fibres = _fractal(rng, width, height, 40, 2, stretch=12)
    t = cv2.pow(rings, rng.uniform(1.5, 4)) * 0.7 + fibres * 0.3
    t[_wrap(v, plank) < 1.5] = 1.0  # the dark seams between planks
    img = _colorize(t, [_hsv(hue, sat, rng.uniform(0.5, 0.8)), _hsv(hue - 5, sat * 1.4, rng.uniform(0.15, 0.4)),
                        _hsv(hue, sat, 0.08)])
    return cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE) if upright else img


def _fabric(rng, width, height) -> np.ndarray:
    """Woven threads over and under each other (plain weave or twill), mottled by the dye."""
    u, v = _turned(rng, width, height, rng.normal(0, 10) + rng.choice([0.0, 45.0]))
    period = rng.uniform(3, 10)
    twill = int(rng.integers(2, 4))  # 2: plain weave
    warp_on_top = _wrap(np.floor(u / period) + np.floor(v / period), twill) < 0.5
    across = np.where(warp_on_top, u, v)  # the coordinate across the thread that is on top
    shade = np.abs(np.sin(across * (np.pi / period)))  # bright thread centre, dark gap
    light = (0.35 + 0.65 * shade) * (0.8 + 0.4 * _fractal(rng, width, height, 6, 3))
    threads = _lookup(warp_on_top.view(np.uint8), _palette(rng, 2))
    return cv2.multiply(threads, cv2.merge([light, light, light]), dtype=cv2.CV_8U)


def _marble(rng, width, height) -> np.ndarray:
    """Stone with veins from turbulent noise: white, green, black or pink marble."""
    u, _ = _turned(rng, width, height)
    turbulence = _fractal(rng, width, height, 3, 5, persistence=0.6)
    veins = np.abs(np.sin(u * rng.uniform(0.01, 0.03) + turbulence * rng.uniform(6, 14)))
    t = cv2.pow(veins, rng.uniform(0.15, 0.4))
    stone = rng.integers(4)
    hue = (0, 140, 0, 345)[stone]
    vein_v, body_v = ((0.35, 0.95), (0.15, 0.55), (0.9, 0.12), (0.45, 0.9))[stone]
    sat = rng.uniform(0, 0.08) if stone in (0, 2) else rng.uniform(0.2, 0.5)
    return _colorize(t, [_hsv(hue, sat, vein_v), _hsv(hue, sat * 0.6, body_v)])


# --- pattern ---------------------------------------------------------------------------------------------

def _pattern(rng, width, height) -> np.ndarray:
    """A printed or tiled regular pattern; which one is random."""
    return (_checkerboard, _stripes, _dots, _rings, _gradient, _tiles)[rng.integers(6)](rng, width, height)


def _wrap(x: np.ndarray, period: float) -> np.ndarray:
    """x modulo `period`, in 0..period: np.mod on floats is several times slower (it fixes signs one by one)."""
    q = x / period
    np.floor(q, out=q)
    q *= period
    return np.subtract(x, q, out=q)


def _cells(u: np.ndarray, period: float, n: int) -> np.ndarray:
    """Index 0..n-1 (uint8) of the band of width `period` that each u falls in, bands cycling through n."""
    return _wrap(np.floor(u / period), n).astype(np.uint8)


def _checkerboard(rng, width, height) -> np.ndarray:
    u, v = _turned(rng, width, height, rng.choice([0.0, rng.uniform(0, 90)]))
    period = rng.uniform(10, 90)
    n = int(rng.choice([2, 2, 3, 4]))
    index = _wrap(np.floor(u / period) + np.floor(v / period) * (1 if n == 2 else 2), n)
    return _lookup(index.astype(np.uint8), _palette(rng, n))


def _stripes(rng, width, height) -> np.ndarray:
    u, _ = _turned(rng, width, height)
    period = rng.uniform(6, 60)
    n = int(rng.integers(2, 6))
    if rng.random() < 0.3:  # soft, sinusoidal
        return _colorize(0.5 + 0.5 * np.sin(u * (2 * np.pi / period)), _palette(rng, 2))
    return _lookup(_cells(u, period, n), _palette(rng, n))


def _dots(rng, width, height) -> np.ndarray:
    u, v = _turned(rng, width, height, rng.choice([0.0, rng.uniform(0, 90)]))
    period = rng.uniform(12, 70)
    radius = period * rng.uniform(0.15, 0.45)
    if rng.random() < 0.5:  # hexagonal: every other row shifted half a period
        u = u + _wrap(np.floor(v / period), 2) * (period / 2)
    distance = cv2.magnitude(_wrap(u, period) - period / 2, _wrap(v, period) - period / 2)
    return _colorize(np.clip(radius + 0.5 - distance, 0, 1), _palette(rng, 2))


def _rings(rng, width, height) -> np.ndarray:
    x, y = _grid(width, height)
    cx, cy = rng.uniform(-0.3, 1.3) * width, rng.uniform(-0.3, 1.3) * height
    r = cv2.magnitude(x - cx, y - cy) * (640 / width)
    period = rng.uniform(8, 50)
    if rng.random() < 0.3:
        return _colorize(0.5 + 0.5 * np.cos(r * (2 * np.pi / period)), _palette(rng, 2))
    n = int(rng.integers(2, 6))
    return _lookup(_cells(r, period, n), _palette(rng, n))


def _gradient(rng, width, height) -> np.ndarray:
    if rng.random() < 0.5:
        u, _ = _turned(rng, width, height)
        field = u
    else:
        x, y = _grid(width, height)
        field = cv2.magnitude(x - rng.uniform(0, width), y - rng.uniform(0, height))
    return _colorize(_unit(field), _palette(rng, int(rng.integers(2, 5))))


def _tiles(rng, width, height) -> np.ndarray:
    """Wall or floor tiles, square or brick-laid, each its own colour from a few, with grout between. A tile's
    colour comes from a hash of its row and column (a table lookup per pixel would cost more)."""
    u, v = _turned(rng, width, height, rng.choice([0.0, 0.0, rng.uniform(0, 90)]))
    tall = rng.uniform(20, 90)
    wide = tall * rng.choice([1.0, rng.uniform(1.5, 3)])
    row = np.floor(v / tall)
    if rng.random() < 0.5:
        u = u + _wrap(row, 2) * (wide / 2)
    col = np.floor(u / wide)
    n = int(rng.integers(1, 6))
    a, b = rng.uniform(10, 100, 2)
    index = (_wrap(np.sin(row * a + col * b) * 437.585, 1.0) * n + 1).astype(np.uint8)
    grout = rng.uniform(1, 5)
    index[(_wrap(u, wide) < grout) | (_wrap(v, tall) < grout)] = 0
    return _lookup(index, np.vstack([_hsv(0, 0, rng.uniform(0.2, 0.9)), _palette(rng, n)]))


# --- text ------------------------------------------------------------------------------------------------

def _text(rng, width, height) -> np.ndarray:
    """A page, a sign, a screen or scattered words; some turned, as a camera sees a sheet lying askew."""
    turn = rng.uniform(-30, 30) if rng.random() < 0.4 else rng.choice([90.0, -90.0]) if rng.random() < 0.1 else 0.0
    side = math.ceil(math.hypot(width, height)) if turn else 0
    w, h = (side, side) if turn else (width, height)
    canvas = (_page, _sign, _screen, _scattered)[rng.integers(4)](rng, w, h, width / 640)
    if not turn:
        return canvas
    M = cv2.getRotationMatrix2D((w / 2, h / 2), turn, 1.0)
    M[:, 2] += ((width - w) / 2, (height - h) / 2)
    return cv2.warpAffine(canvas, M, (width, height), flags=cv2.INTER_LINEAR)


def _word(rng) -> str:
    """A made-up word, capitalised or not, or a number with a unit: text to read, in no language."""
    letters = rng.integers(ord("a"), ord("z") + 1, int(rng.integers(1, 11)), dtype=np.uint8).tobytes().decode()
    style = rng.random()
    if style < 0.15:
        return letters.upper()
    if style < 0.35:
        return letters.capitalize()
    if style < 0.45:
        return str(rng.integers(0, 10 ** int(rng.integers(1, 6)))) + rng.choice(["", ".", ",", "%", "mm", "kg"])
    return letters + ("," if rng.random() < 0.08 else ".") * (rng.random() < 0.12)


def _font(rng) -> int:
    return int(rng.choice(_FONTS)) | (cv2.FONT_ITALIC if rng.random() < 0.15 else 0)


def _paper(rng, w, h) -> np.ndarray:
    """Off-white paper, faintly uneven."""
    hue = rng.uniform(0, 360)
    sat, val = rng.uniform(0, 0.12), rng.uniform(0.82, 0.98)
    return _colorize(_fractal(rng, w, h, 4, 3), [_hsv(hue, sat, val - 0.06), _hsv(hue, sat, val)])


def _ink(rng) -> tuple[int, int, int]:
    return _ints(_hsv(rng.choice([0, 220, 240, 0]), rng.uniform(0, 0.8), rng.uniform(0, 0.35)))


def _page(rng, w, h, k) -> np.ndarray:
    """Lines of words from margin to margin, maybe under a bigger heading."""
    img = _paper(rng, w, h)
    font, ink = _font(rng), _ink(rng)
    scale, thick = rng.uniform(0.45, 1.0) * k, int(rng.integers(1, 3))
    margin = int(rng.uniform(0.03, 0.15) * w)
    y = margin
    if rng.random() < 0.5:
        y = _line(img, rng, margin, y + int(40 * k), w - margin, font, scale * rng.uniform(1.8, 2.8), thick + 1, ink, 4)
    (_, line_h), _ = cv2.getTextSize("Ag", font, scale, thick)
    step = int(line_h * rng.uniform(1.6, 2.4)) + 1
    while y < h - margin:
        y = _line(img, rng, margin, y + step, w - margin, font, scale, thick, ink, 40)
    return img


def _line(img, rng, x0, y, x1, font, scale, thick, color, words) -> int:
    """Words from x0 until the next would pass x1 (at most `words`), drawn in one call; returns the baseline y."""
    space = cv2.getTextSize(" ", font, scale, thick)[0][0]
    line, x = [], x0
    for _ in range(words):
        word = _word(rng)
        x += cv2.getTextSize(word, font, scale, thick)[0][0]  # Hershey glyphs have no kerning: widths add up
        if x > x1:
            break
        line.append(word)
        x += space
    cv2.putText(img, " ".join(line), (x0, y), font, scale, color, thick, cv2.LINE_AA)
    return y


def _sign(rng, w, h, k) -> np.ndarray:
    """A coloured sign with a border, maybe a warning triangle, and a few big words."""
    bg = _hsv(rng.choice([0, 50, 120, 220, 30, 0]), rng.uniform(0.6, 1), rng.uniform(0.6, 1))
    if rng.random() < 0.2:
        bg = _hsv(0, 0, rng.uniform(0.85, 1))
    img = np.empty((h, w, 3), np.uint8)
    img[:] = _ints(bg)
    fg = (20, 20, 20) if bg.mean() > 140 else (245, 245, 245)
    inset = int(rng.uniform(0.03, 0.1) * min(w, h))
    border = max(2, int(8 * k * rng.uniform(0.5, 1.5)))
    cv2.rectangle(img, (inset, inset), (w - inset, h - inset), fg, border, cv2.LINE_AA)
    font, thick = _font(rng), int(rng.integers(2, 6))
    lines = [" ".join(_word(rng) for _ in range(rng.integers(1, 3))).upper() for _ in range(rng.integers(1, 4))]
    top = h // 3
    if rng.random() < 0.4:
        cx, size = w // 2, int(h * 0.15)
        triangle = np.array([(cx, top - size), (cx + size, top + size // 2), (cx - size, top + size // 2)], np.int32)
        cv2.polylines(img, [triangle], True, fg, max(3, size // 8), cv2.LINE_AA)
        cv2.putText(img, "!", (cx - size // 6, top + size // 3), cv2.FONT_HERSHEY_DUPLEX, size / 40, fg,
                    max(2, size // 10), cv2.LINE_AA)
        top += size
    for n, text in enumerate(lines):
        scale = rng.uniform(1.0, 2.6) * k
        (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
        scale *= min(1.0, (w - 4 * inset) / max(tw, 1))
        (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
        y = top + int((n + 1) * th * 2.2)
        cv2.putText(img, text, ((w - tw) // 2, min(y, h - inset - 4)), font, scale, fg, thick, cv2.LINE_AA)
    return img


def _screen(rng, w, h, k) -> np.ndarray:
    """A terminal or instrument display: light monospace-like text on a dark screen."""
    img = np.empty((h, w, 3), np.uint8)
    img[:] = _ints(_hsv(rng.uniform(180, 260), rng.uniform(0, 0.5), rng.uniform(0.02, 0.2)))
    color = _ints(_hsv(rng.choice([120, 40, 0, 190]), rng.uniform(0, 0.9), rng.uniform(0.7, 1)))
    font = int(rng.choice([cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL]))
    scale = rng.uniform(0.6, 1.4) * k
    step = int(cv2.getTextSize("Ag", font, scale, 1)[0][1] * rng.uniform(1.6, 2.2)) + 1
    for y in range(step, h, step):
        _line(img, rng, int(8 * k), y, w - int(8 * k), font, scale, 1, color, int(rng.integers(1, 12)))
    return img


def _scattered(rng, w, h, k) -> np.ndarray:
    """Words anywhere, in every font, size and colour: stickers, labels, a notice board."""
    img = _paper(rng, w, h) if rng.random() < 0.5 else _colorize(_fractal(rng, w, h, 1, 2), _palette(rng, 2))
    for _ in range(rng.integers(10, 40)):
        cv2.putText(img, _word(rng), (int(rng.uniform(-0.1, 0.9) * w), int(rng.uniform(0.05, 1) * h)), _font(rng),
                    rng.uniform(0.5, 3) * k, _ints(_random_color(rng)), int(rng.integers(1, 6)), cv2.LINE_AA)
    return img


# --- clutter ---------------------------------------------------------------------------------------------

def _clutter(rng, width, height) -> np.ndarray:
    """A desk of random things: overlapping filled and outlined shapes and lines in many colours on a table
    top, wood or plain, with shadows under some."""
    if rng.random() < 0.3:
        img = _wood(rng, width, height)
    else:
        img = _colorize(_fractal(rng, width, height, 1.5, 3), [_random_color(rng, val=(0.2, 0.9)) for _ in range(2)])
    unit = _scaled(width, 1)
    for _ in range(rng.integers(25, 110)):
        color = _ints(_random_color(rng, sat=(0.1, 1), val=(0.1, 1)))
        pick = rng.random()
        if pick < 0.15:
            points = rng.uniform(0, 1, (int(rng.integers(2, 6)), 2)) * (width, height)
            thickness = int(rng.integers(1, 14) * unit) or 1
            cv2.polylines(img, [points.astype(np.int32)], False, color, thickness, cv2.LINE_AA)
            continue
        points = _shape(rng, pick, width, height, unit)
        if rng.random() < 0.4:
            cv2.fillPoly(img, [points + int(rng.uniform(3, 10) * unit)], (15, 15, 15), cv2.LINE_AA)
        if rng.random() < 0.25:
            cv2.polylines(img, [points], True, color, int(rng.integers(1, 7)), cv2.LINE_AA)
        else:
            cv2.fillPoly(img, [points], color, cv2.LINE_AA)
    return img


def _shape(rng, pick, width, height, unit) -> np.ndarray:
    """Outline (int32 points) of a turned rectangle, an ellipse or a random star-shaped polygon."""
    cx, cy = rng.uniform(-0.05, 1.05) * width, rng.uniform(-0.05, 1.05) * height
    a, b = rng.uniform(8, 160, 2) * unit
    angle = rng.uniform(0, 180)
    if pick < 0.5:
        return cv2.boxPoints(((cx, cy), (2 * a, 2 * b), angle)).astype(np.int32)
    if pick < 0.75:
        return cv2.ellipse2Poly((int(cx), int(cy)), (int(a) + 1, int(b) + 1), int(angle), 0, 360, 8)
    n = int(rng.integers(3, 10))
    turns = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = a * rng.uniform(0.3, 1.0, n)
    return np.stack([cx + radii * np.cos(turns), cy + radii * np.sin(turns)], 1).astype(np.int32)


# --- scene with another object ---------------------------------------------------------------------------

def _scene_with_object(rng, width, height, domain) -> tuple[np.ndarray, int | None]:
    """The empty scene of a domain with a non-glass object drawn into its background, so that the scene's
    light, optics and noise fall on the object as they fall on glassware."""
    domain = domain or DOMAINS[rng.integers(len(DOMAINS))]
    scene = draw_scene(domain, rng, width, height)
    canvas = scene.background
    h, w = canvas.shape[:2]
    size = h * rng.uniform(0.3, 0.65)
    center = (rng.uniform(0.2, 0.8) * w, rng.uniform(0.35, 0.75) * h)
    (_block, _ball, _tool, _hand)[rng.integers(4)](canvas, rng, center, size)
    return compose(scene, None, None, rng), scene.jpeg_quality


def _soft_shadow(img, outline: np.ndarray, blur: float, strength: float, shrink: int = 4) -> None:
    """Darken the frame under a polygon (frame pixels), softened by `blur` pixels: the contact shadow that
    keeps an object from floating. Drawn at 1/`shrink` size, as it is soft anyway."""
    h, w = img.shape[:2]
    mask = np.zeros((max(1, h // shrink), max(1, w // shrink)), np.uint8)
    cv2.fillPoly(mask, [np.round(np.asarray(outline) * (16 / shrink)).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.5, blur / shrink))
    keep = cv2.resize(cv2.convertScaleAbs(mask, alpha=-strength, beta=255), (w, h), interpolation=cv2.INTER_LINEAR)
    cv2.multiply(img, cv2.cvtColor(keep, cv2.COLOR_GRAY2BGR), dst=img, scale=1 / 255)


def _ellipse(center, axes) -> np.ndarray:
    """Outline of an upright ellipse (frame pixels)."""
    (cx, cy), (ax, ay) = center, axes
    return cv2.ellipse2Poly((int(cx), int(cy)), (max(1, int(ax)), max(1, int(ay))), 0, 0, 360, 10)


def _bar(p0, p1, thickness: float) -> np.ndarray:
    """Outline of a straight bar from p0 to p1 (frame pixels)."""
    (x0, y0), (x1, y1) = p0, p1
    length = max(1e-6, math.hypot(x1 - x0, y1 - y0))
    nx, ny = (y0 - y1) / length * thickness / 2, (x1 - x0) / length * thickness / 2
    return np.array([(x0 + nx, y0 + ny), (x1 + nx, y1 + ny), (x1 - nx, y1 - ny), (x0 - nx, y0 - ny)])


def _block(img, rng, center, size) -> None:
    """A coloured box or toy brick: front, top and side faces in three shades."""
    cx, cy = center
    w, h, depth = size * rng.uniform(0.5, 1.1), size * rng.uniform(0.3, 0.8), size * rng.uniform(0.15, 0.4)
    lean = math.radians(rng.uniform(25, 60))
    dx, dy = depth * math.cos(lean) * rng.choice([-1, 1]), depth * math.sin(lean)
    x0, x1, y0, y1 = cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2
    edge = x1 if dx > 0 else x0
    faces = [([(x0, y0), (x1, y0), (x1 + dx, y0 - dy), (x0 + dx, y0 - dy)], 1.2),
             ([(edge, y0), (edge + dx, y0 - dy), (edge + dx, y1 - dy), (edge, y1)], 0.65),
             ([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], 0.9)]
    color = _random_color(rng, sat=(0.4, 1), val=(0.35, 0.95))
    _soft_shadow(img, _ellipse((cx + dx / 2, y1), (w / 2 + abs(dx), size * 0.06)), size * 0.05, 0.5)
    for points, shade in faces:
        outline = np.round(np.array(points) * 16).astype(np.int32)  # 4 fraction bits
        cv2.fillPoly(img, [outline], _ints(color * shade), cv2.LINE_AA, shift=4)
    if rng.random() < 0.4:  # studs on top, as on a toy brick
        n = int(rng.integers(2, 5))
        for k in range(n):
            sx = x0 + w * (k + 0.5) / n + dx / 2
            cv2.ellipse(img, (int(sx), int(y0 - dy / 2)), (max(1, int(w / n / 3)), max(1, int(dy / 4))), 0, 0, 360,
                        _ints(color * 1.35), -1, cv2.LINE_AA)


def _ball(img, rng, center, size) -> None:
    """A shaded ball with a highlight: plain, or in coloured segments like a beach ball."""
    cx, cy = center
    r = size * rng.uniform(0.25, 0.45)
    _soft_shadow(img, _ellipse((cx + r * 0.3, cy + r * 0.9), (r, r * 0.25)), r * 0.2, 0.55)
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(0, int(cx - r - 1)), max(0, int(cy - r - 1)), min(w, int(cx + r + 2)), min(h, int(cy + r + 2))
    if x1 <= x0 or y1 <= y0:
        return
    y, x = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = x - cx, y - cy
    d = np.sqrt(dx * dx + dy * dy)
    colors = _palette(rng, int(rng.choice([1, 1, 2, 3, 6])))
    sector = np.mod(np.floor((np.arctan2(dy, dx) + rng.uniform(0, np.pi)) / (2 * np.pi) * len(colors) * 2), len(colors))
    base = colors[sector.astype(np.intp)]
    lit = np.hypot(dx + 0.35 * r, dy + 0.4 * r) / (1.7 * r)
    shade = np.clip(1.05 - lit, 0.2, 1.0)
    gloss = np.exp(-(lit * 1.7 / 0.18) ** 2) * rng.uniform(60, 200)
    ball = base * shade[..., None] + gloss[..., None]
    alpha = np.clip(r - d + 0.5, 0, 1)[..., None]
    roi = img[y0:y1, x0:x1]
    roi[:] = np.clip(roi * (1 - alpha) + ball * alpha, 0, 255).astype(np.uint8)


def _tool(img, rng, center, size) -> None:
    """A screwdriver, a ring spanner or scissors, lying at any angle."""
    cx, cy = center
    length = size * rng.uniform(1.0, 1.7)
    a = rng.uniform(0, np.pi)
    ux, uy = math.cos(a), math.sin(a)

    def at(s: float, dx: float = 0.0, dy: float = 0.0) -> tuple[int, int]:
        """The point `s` lengths along the tool from its centre (shifted by dx, dy: its shadow)."""
        return int(cx + ux * s * length + dx), int(cy + uy * s * length + dy)

    metal = _ints(_hsv(0, 0, rng.uniform(0.55, 0.85)))
    handle = _ints(_random_color(rng, sat=(0.5, 1), val=(0.3, 0.95)))
    thick = max(3, int(length * rng.uniform(0.1, 0.16)))
    below = (thick * 0.3, thick * 0.6)
    _soft_shadow(img, _bar(at(-0.5, *below), at(0.5, *below), thick), thick * 0.5, 0.45)
    kind = rng.integers(3)
    if kind == 0:  # screwdriver
        cv2.line(img, at(-0.1), at(0.5), metal, max(2, thick // 4), cv2.LINE_AA)
        cv2.line(img, at(-0.5), at(-0.1), handle, thick, cv2.LINE_AA)
        cv2.line(img, at(-0.45), at(-0.15), _ints(np.array(handle) * 0.7), max(1, thick // 5), cv2.LINE_AA)
    elif kind == 1:  # ring spanner: the background shows through the rings
        ring = int(thick * 0.9)
        cv2.line(img, at(-0.38), at(0.38), metal, max(3, int(thick * 0.6)), cv2.LINE_AA)
        for end in (-0.45, 0.45):
            cv2.circle(img, at(end), ring, metal, max(2, ring // 2), cv2.LINE_AA)
    else:  # scissors, a little open
        _scissors(img, center, length, a, rng.uniform(0.05, 0.3), thick, metal, handle)


def _scissors(img, center, length: float, direction: float, opening: float, thick: int, metal, handle) -> None:
    """Two blades crossing at a pivot, towards `direction` (radians), with ring handles behind it."""
    cx, cy = center

    def towards(angle: float, reach: float) -> tuple[int, int]:
        return int(cx + math.cos(angle) * reach * length), int(cy + math.sin(angle) * reach * length)

    ring = max(3, int(thick * 0.8))
    for side in (-1, 1):
        blade = (towards(direction + math.pi - side * opening, 0.08), towards(direction + side * opening / 2, 0.55))
        cv2.line(img, *blade, metal, max(2, thick // 3), cv2.LINE_AA)
        shank_end = towards(direction + math.pi + side * opening * 2.5, 0.3)
        cv2.line(img, (int(cx), int(cy)), shank_end, handle, max(2, thick // 3), cv2.LINE_AA)
        loop = towards(direction + math.pi + side * opening * 2.5, 0.3 + ring / length)
        cv2.circle(img, loop, ring, handle, max(2, ring // 2), cv2.LINE_AA)
    cv2.circle(img, (int(cx), int(cy)), max(1, thick // 5), (40, 40, 40), -1, cv2.LINE_AA)


def _hand(img, rng, center, size) -> None:
    """A hand reaching in from off the frame, bare or in a nitrile or latex glove, with a sleeve."""
    cx, cy = center
    if rng.random() < 0.5:
        skin = _hsv(rng.uniform(12, 30), rng.uniform(0.25, 0.6), rng.uniform(0.35, 0.95))
    else:
        skin = _hsv(rng.choice([215, 265, 50, 0]), rng.uniform(0.0, 0.7), rng.uniform(0.6, 0.95))
    a = rng.uniform(0, 2 * np.pi)  # where the fingers point
    d, n = np.array([math.cos(a), math.sin(a)]), np.array([-math.sin(a), math.cos(a)])
    palm_long, palm_wide = size * 0.5, size * 0.45
    c = np.array([cx, cy])

    def p(point) -> tuple[int, int]:
        return int(point[0]), int(point[1])

    sleeve = _ints(_hsv(rng.uniform(0, 360), rng.uniform(0, 0.6), rng.uniform(0.3, 1)))
    cv2.line(img, p(c - d * palm_long * 0.9), p(c - d * size * 4), sleeve, int(palm_wide * 1.1), cv2.LINE_AA)
    wrist = (p(c - d * palm_long * 0.3), p(c - d * palm_long * 0.9))
    cv2.line(img, *wrist, _ints(skin), int(palm_wide * 0.6), cv2.LINE_AA)
    outline, fill = _ints(skin * 0.72), _ints(skin)
    finger = max(2, int(palm_wide * 0.22))
    spread = rng.uniform(0.0, 0.18)
    side = rng.choice([-1, 1])
    bases = [c + d * palm_long * 0.35 + n * palm_wide * s * side for s in (-0.36, -0.12, 0.12, 0.36)]
    tips = []
    for k, (base, reach) in enumerate(zip(bases, (0.75, 0.9, 0.85, 0.65))):
        turn = a + spread * (k - 1.5) * side
        tips.append(base + np.array([math.cos(turn), math.sin(turn)]) * palm_long * reach * rng.uniform(0.5, 1.0))
    thumb_base = c - n * palm_wide * 0.4 * side
    thumb_turn = a - side * rng.uniform(0.6, 1.2)
    thumb_tip = thumb_base + np.array([math.cos(thumb_turn), math.sin(thumb_turn)]) * palm_long * 0.7
    for base, tip in [*zip(bases, tips), (thumb_base, thumb_tip)]:
        cv2.line(img, p(base), p(tip), outline, finger + 2, cv2.LINE_AA)
        cv2.line(img, p(base), p(tip), fill, finger, cv2.LINE_AA)
    cv2.ellipse(img, p(c), (int(palm_long / 2), int(palm_wide / 2)), math.degrees(a), 0, 360, fill, -1, cv2.LINE_AA)


# --- bad frames ------------------------------------------------------------------------------------------

def _bad_frame(rng, width, height) -> np.ndarray:
    """A frame a camera delivers when something goes wrong; which failure is random."""
    return (_sensor_noise, _too_dark, _blown_out, _smeared, _torn)[rng.integers(5)](rng, width, height)


def _content(rng, width, height) -> np.ndarray:
    """What the failed frame would have shown: never glassware, and never the empty bench (which is the
    `background` class, not something to refuse)."""
    pick = rng.integers(4)
    if pick == 0:
        return _scene_with_object(rng, width, height, None)[0]
    return (_texture, _pattern, _clutter)[pick - 1](rng, width, height)


def _uniform_noise(rng, width, height, sigma: float) -> tuple[np.ndarray, float]:
    """(uint8 uniform noise, the weight that gives it standard deviation `sigma`): uniform noise is several
    times cheaper to draw than Gaussian and looks the same at a glance."""
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8), sigma / 73.9


def _add_noise(img, rng, sigma: float) -> np.ndarray:
    h, w = img.shape[:2]
    noise, k = _uniform_noise(rng, w, h, sigma)
    return cv2.addWeighted(img, 1.0, noise, k, -127.5 * k)


def _sensor_noise(rng, width, height) -> np.ndarray:
    """Nothing but noise: a capped lens or a dead exposure at high gain, with row banding and hot pixels."""
    level = rng.uniform(3, 140) * (1 + rng.uniform(-0.3, 0.3, 3))
    banding = rng.normal(0, rng.uniform(2, 12), (height, 1)) * (rng.random() < 0.6)
    column = np.clip(level + banding, 0, 255).astype(np.uint8)[:, None, :]
    img = cv2.resize(column, (width, height), interpolation=cv2.INTER_NEAREST)
    img = _add_noise(img, rng, rng.uniform(6, 60))
    hot = int(rng.integers(0, 200))
    img[rng.integers(0, height, hot), rng.integers(0, width, hot)] = 255
    return img


def _too_dark(rng, width, height) -> np.ndarray:
    """Almost no light: a few percent of the picture, lifted by the black level and buried in gain noise."""
    img = cv2.convertScaleAbs(_content(rng, width, height), alpha=rng.uniform(0.02, 0.12), beta=rng.uniform(0, 12))
    return _add_noise(img, rng, rng.uniform(2, 10))


def _blown_out(rng, width, height) -> np.ndarray:
    """Far too much light: most of the picture clipped to white, with the glow of the highlights around it."""
    img = cv2.convertScaleAbs(_content(rng, width, height), alpha=rng.uniform(1.8, 5), beta=rng.uniform(10, 100))
    glow = _blur_small(img, _scaled(width, rng.uniform(6, 20)))
    return _add_noise(cv2.max(img, glow), rng, rng.uniform(1, 4))


def _blur_small(img: np.ndarray, sigma: float, shrink: int = 4) -> np.ndarray:
    """A wide Gaussian blur made at 1/`shrink` resolution: it leaves no detail that the full size would keep."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, w // shrink), max(1, h // shrink)), interpolation=cv2.INTER_AREA)
    return cv2.resize(cv2.GaussianBlur(small, (0, 0), sigma / shrink), (w, h), interpolation=cv2.INTER_LINEAR)


def _smeared(rng, width, height) -> np.ndarray:
    """The camera moving fast during the exposure: one long smear, made at reduced resolution."""
    img = _content(rng, width, height)
    length = rng.uniform(0.12, 0.5) * width
    shrink = 8
    small = cv2.resize(img, (max(1, width // shrink), max(1, height // shrink)), interpolation=cv2.INTER_AREA)
    small = cv2.filter2D(small, -1, _line_kernel(length / shrink, rng.uniform(0, 180)), borderType=cv2.BORDER_REFLECT)
    return _add_noise(cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR), rng, rng.uniform(1, 5))


def _line_kernel(length: float, angle: float) -> np.ndarray:
    n = int(math.ceil(length)) | 1
    kernel = np.zeros((n, n), np.float32)
    c, s, half = math.cos(math.radians(angle)), math.sin(math.radians(angle)), (length - 1) / 2
    cv2.line(kernel, (round(n // 2 - c * half), round(n // 2 - s * half)),
             (round(n // 2 + c * half), round(n // 2 + s * half)), 1.0, 1)
    return kernel / kernel.sum()


def _torn(rng, width, height) -> np.ndarray:
    """A frame broken in transmission: bands shifted sideways, a row repeated down to the bottom, or the rest
    of the frame left grey or green by the decoder."""
    img = _content(rng, width, height)
    for _ in range(rng.integers(1, 6)):
        y0 = int(rng.integers(0, height - 1))
        y1 = min(height, y0 + int(rng.uniform(0.03, 0.3) * height))
        img[y0:y1] = np.roll(img[y0:y1], int(rng.uniform(-0.4, 0.4) * width), axis=1)
    cut = int(rng.uniform(0.2, 0.85) * height)
    ending = rng.integers(3)
    if ending == 0:
        img[cut:] = img[cut - 1]
    elif ending == 1:
        img[cut:] = ((128, 128, 128), (0, 135, 0))[rng.integers(2)]
    return img


# --- a camera photographing a flat picture ------------------------------------------------------------

def _photograph(img: np.ndarray, rng) -> np.ndarray:
    """As a camera sees a flat picture: sometimes tilted away or out of focus, under uneven light, at some
    exposure, with sensor noise."""
    h, w = img.shape[:2]
    if rng.random() < 0.3:
        corners = np.float32([(0, 0), (w, 0), (w, h), (0, h)])
        moved = corners + (rng.uniform(-0.12, 0.12, (4, 2)) * (w, h)).astype(np.float32)
        img = cv2.warpPerspective(img, cv2.getPerspectiveTransform(moved, corners), (w, h),
                                  borderMode=cv2.BORDER_REFLECT_101)
    if rng.random() < 0.25:
        img = cv2.GaussianBlur(img, (0, 0), _scaled(w, rng.uniform(0.8, 3.0)))
    light = cv2.resize((rng.uniform(0.65, 1.15, (3, 4)) * 200).astype(np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    img = cv2.multiply(img, cv2.cvtColor(light, cv2.COLOR_GRAY2BGR), scale=rng.uniform(0.85, 1.15) / 200)
    return _add_noise(img, rng, rng.uniform(1, 6))
