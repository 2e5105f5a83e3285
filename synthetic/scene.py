"""Scenes for the two domains: the surface an object stands on, the light, and the camera that films it.

`lab` is the paper's training setup: a flat white surface, neutral diffuse light, a clean camera, with rare
(2 %) shadows and motion blur. `stress` is what broke the paper's model: darker, murky, uneven light
with deep shadows; busy out-of-focus backgrounds; the object often standing in a styrofoam box; and another
camera (colour cast, more noise, softer or over-sharpened, lower JPEG quality). The objects themselves are
the same, so shape, label and cap still tell the classes apart.

Everything random is drawn from the caller's `numpy.random.Generator`; fixed tables (noise, styrofoam
texture) come from fixed seeds, so a scene depends only on that generator.

Colours are chosen as RGB, but pictures are drawn in OpenCV's channel order (BGR), so they go to the JPEG
or video encoder as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import cv2
import numpy as np

from glassware.synthetic.objects import Sprite, pick_level

DOMAINS = ("lab", "stress")
_NOISE_SIGMA = 16.0  # of the stored noise table; scaled per camera
_TILE = 509  # noise tile size: prime, so its repeats never line up with 8x8 JPEG blocks


@dataclass
class Box:
    """A styrofoam box around the object, in fractions of the placed object's bounding box."""

    left: float
    right: float
    floor: float  # back edge of the floor, above the object's bottom
    back: float  # back wall height above the floor
    occlusion: float  # front rim above the object's bottom (> 0 hides that much of it)
    front: float  # front wall height below the rim
    wall: float  # rim thickness
    color: tuple[int, int, int]  # RGB
    texture_at: tuple[int, int]


@dataclass
class Scene:
    """Everything about one shot except the object: background, light, camera."""

    domain: str
    size: tuple[int, int]  # (W, H) of the picture
    background: np.ndarray  # BGR uint8 (H, W, 3) before lighting, or smaller: the size the camera resolves
    light: np.ndarray | None  # BGR uint8 gain map as big, 255 = 1.0, with the colour cast; None: even light
    haze: tuple[int, int, int]  # murky light (BGR) added after the gain map (integers: cv2 adds them 4x faster)
    gain: float  # exposure, applied last
    box: Box | None
    shadow: tuple[float, float, float, float] | None  # dx, dy (fractions of object size), strength, softness
    noise: float  # sensor noise sigma, grey levels
    soft: float  # optics: 1 = sharp, 0.5 = detail of a camera with half the resolution
    sharpen: float  # unsharp-mask amount (the other camera's processing)
    motion: tuple[float, float]  # motion blur length (px at 640 wide) and angle (degrees); 0 = none
    jpeg_quality: int | None  # this camera's JPEG quality (None: the writer's)


@dataclass(frozen=True)
class Placement:
    """Where an object is: centre of its extent (px), px per object unit, rotation (degrees, counter-clockwise)."""

    cx: float
    cy: float
    scale: float
    angle: float


# --- drawing a scene -----------------------------------------------------------------------------------

def draw_scene(domain: str, rng: np.random.Generator, width: int, height: int, full_size: bool = False) -> Scene:
    """A scene for a `width` x `height` picture. Its background and light are drawn at the size its camera
    resolves (`_drawn_size`), or at full size with `full_size` (to crop views from it, as the video does)."""
    if domain == "lab":
        return _lab(rng, width, height, full_size)
    if domain == "stress":
        return _stress(rng, width, height, full_size)
    raise ValueError(f"unknown domain {domain!r}; expected one of {DOMAINS}")


def _drawn_size(width: int, height: int, soft: float) -> tuple[int, int]:
    """A soft camera resolves only `soft` of the detail: its picture is drawn that much smaller, then magnified
    (drawing it sharp first would cost more, and the camera loses the detail anyway)."""
    return max(1, round(width * soft)), max(1, round(height * soft))


def _lab(rng, width, height, full_size) -> Scene:
    white = 246 + rng.uniform(-5, 5) + rng.uniform(-3, 3, 3)  # white balance varies a little
    uneven = rng.uniform(-10, 3, (2, 2))  # diffuse light, gently uneven: the same in every channel
    wall = (rng.uniform(0.03, 0.3), white * rng.uniform(0.9, 0.97)) if rng.random() < 0.4 else None  # behind the table
    rare = rng.random(2)
    gain = rng.uniform(0.95, 1.0)
    shadow = (rng.uniform(0.04, 0.12), rng.uniform(0.0, 0.06), rng.uniform(0.2, 0.35), 0.04) if rare[0] < 0.02 else None
    noise = rng.uniform(1.0, 2.5)
    soft = rng.uniform(0.6, 0.85) if rng.random() < 0.2 else 1.0
    motion = (rng.uniform(6, 16), rng.uniform(0, 180)) if rare[1] < 0.02 else (0.0, 0.0)

    w, h = (width, height) if full_size else _drawn_size(width, height, soft)
    # Magnified as one channel, then the white balance added: a third of the work of a colour magnification.
    background = cv2.cvtColor(_upscale(uneven + 10, w, h), cv2.COLOR_GRAY2BGR)
    background = cv2.add(background, (*(round(v) for v in white[::-1] - 10), 0), dst=background)
    if wall is not None and int(h * wall[0]):  # (cv2 fills rows with a colour much faster than numpy)
        color = np.clip(wall[1][::-1], 0, 255).astype(np.uint8).tolist()
        cv2.rectangle(background, (0, 0), (w - 1, int(h * wall[0]) - 1), color, -1)
    return Scene("lab", (width, height), background, None, (0, 0, 0), gain=gain, box=None, shadow=shadow,
                 noise=noise, soft=soft, sharpen=0.0, motion=motion, jpeg_quality=None)


# Another camera's white balance: warm, greenish (fluorescent), cool... mild, as after the camera's own AWB.
_CASTS = np.array([[1.0, 0.96, 0.89], [0.94, 1.0, 0.95], [0.92, 0.97, 1.0], [1.0, 0.98, 0.94], [0.98, 1.0, 0.92]])


def _stress(rng, width, height, full_size) -> Scene:
    cast = _CASTS[rng.integers(len(_CASTS))] * (1 + rng.uniform(-0.02, 0.02, 3))
    gain = rng.uniform(0.6, 0.85) * cast / cast.max()
    dark = (rng.uniform(0, np.pi * 2), rng.uniform(-0.3, 0.3), rng.uniform(0.25, 0.5)) if rng.random() < 0.4 else None
    light = _light(rng, gain, vignette=rng.uniform(0.1, 0.35), spot=rng.uniform(0.0, 0.4), dark=dark)
    murk = rng.uniform(15, 40) * np.array([1.0, 0.95, 0.8]) * (1 + rng.uniform(-0.15, 0.15, 3))
    box = None
    if rng.random() < 0.9:  # the paper's stress photos: flasks "positioned inside some kind of styrofoam box"
        box = Box(left=rng.uniform(0.2, 0.7), right=rng.uniform(0.2, 0.7), floor=rng.uniform(0.06, 0.2),
                  back=rng.uniform(0.9, 1.3), occlusion=rng.uniform(-0.1, 0.1), front=rng.uniform(0.2, 0.7),
                  wall=rng.uniform(0.03, 0.06),
                  color=tuple(int(v) for v in rng.uniform(205, 240) + rng.uniform(-6, 6, 3)),
                  texture_at=(int(rng.integers(_TILE)), int(rng.integers(_TILE))))
    soft = rng.random() < 0.5
    clutter = _clutter(rng, width, height)
    shadow = None
    if rng.random() < 0.5:
        shadow = (rng.uniform(-0.15, 0.15), rng.uniform(0.0, 0.1), rng.uniform(0.3, 0.6), 0.06)
    noise = rng.uniform(3.0, 9.0)
    softness = rng.uniform(0.4, 0.65) if soft else 1.0
    sharpen = rng.uniform(0.6, 1.5) if not soft and rng.random() < 0.4 else 0.0
    motion = (rng.uniform(6, 18), rng.uniform(0, 180)) if rng.random() < 0.05 else (0.0, 0.0)
    quality = int(rng.integers(35, 75))

    w, h = (width, height) if full_size else _drawn_size(width, height, softness)
    return Scene("stress", (width, height), clutter(w, h), _upscale(light, w, h), tuple(round(v) for v in murk[::-1]),
                 gain=1.0, box=box, shadow=shadow, noise=noise, soft=softness, sharpen=sharpen, motion=motion,
                 jpeg_quality=quality)


def _upscale(small: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(np.clip(small, 0, 255).astype(np.uint8), (width, height), interpolation=cv2.INTER_LINEAR)


def _rows(colors: np.ndarray, width: int) -> np.ndarray:
    """An image of `width` columns whose rows have the given colours (h, 3)."""
    column = np.clip(colors, 0, 255).astype(np.uint8)[:, None, :]
    return cv2.resize(column, (width, len(column)), interpolation=cv2.INTER_NEAREST)


_GRID = np.mgrid[-1:1:12j, -1:1:16j]  # (y, x) of the light map's 16x12 samples


def _light(rng, gain, vignette: float, spot: float, dark) -> np.ndarray:
    """Low-frequency illumination (vignette, a brighter spot, a deep shadow edge) with the colour cast `gain`
    (RGB): a 16x12 BGR gain map (255 = 1.0) to be magnified."""
    y, x = _GRID
    g = 1 - vignette * (x * x + y * y) / 2
    if spot:
        sx, sy = rng.uniform(-0.8, 0.8, 2)
        g = g + spot * np.exp(-((x - sx) ** 2 + (y - sy) ** 2) / 0.3)
    if dark is not None:  # something between the lamp and the scene: a soft-edged dark half
        angle, offset, depth = dark
        side = x * np.cos(angle) + y * np.sin(angle) - offset
        g = g * (1 - depth / (1 + np.exp(-side * 8)))
    return np.clip(g, 0, 1.2)[..., None] * np.asarray(gain)[None, None, ::-1] * 255


def _clutter(rng, width, height) -> Callable[[int, int], np.ndarray]:
    """A busy lab background: shelves, boxes, papers, bottles and cables, out of focus, and a bench top; maybe
    a pegboard. Returns the function that draws it (BGR) at a size: `width` x `height`, or smaller for a soft
    camera."""
    w, h = max(16, width // 4), max(12, height // 4)  # drawn small: it is out of focus anyway
    base = rng.uniform(150, 230) * (1 + rng.uniform(-0.1, 0.1, 3))
    img = _rows(base * np.linspace(1.1, 0.8, h)[:, None], w)
    n = int(rng.integers(14, 30))
    muted = rng.uniform(30, 200, (n, 1)) * (1 + rng.uniform(-0.2, 0.2, (n, 3)))
    colors = np.where(rng.random((n, 1)) < 0.35, rng.uniform(15, 235, (n, 3)), muted).astype(int).tolist()
    kinds = rng.random(n).tolist()
    xy = np.stack([rng.integers(-w // 8, w, n), rng.integers(-h // 8, h, n)], 1).tolist()
    size = np.stack([rng.integers(2, w // 3, n), rng.integers(2, h // 2, n)], 1).tolist()
    for kind, (x, y), (sx, sy), color in zip(kinds, xy, size, colors):
        if kind < 0.5:
            cv2.rectangle(img, (x, y), (x + sx, y + sy), color, -1)
        elif kind < 0.75:
            cv2.ellipse(img, (x, y), (sx // 3 + 1, sy // 2 + 1), 0, 0, 360, color, -1)
        else:
            cv2.line(img, (x, y), (x + sx * 2 - w // 3, y + sy * 2 - h // 2), color, 1 + int(kind * 8) % 2)
    bench = int(h * rng.uniform(0.45, 0.8))
    top = rng.uniform(140, 220) * (1 + rng.uniform(-0.1, 0.1, 3))
    img[bench:] = _rows(top * np.linspace(0.85, 1.1, h - bench)[:, None], w)
    # Out of focus behind the object: blurred at half this size again (the blur removes that detail anyway).
    img = cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(1.5, 3.0) / 2)
    keep = rng.uniform(0.15, 0.35)  # of the clutter's contrast: it is far away, in murky air
    img = cv2.cvtColor(cv2.transform(img, np.hstack([keep * np.eye(3), (1 - keep) * base[:, None]])), cv2.COLOR_RGB2BGR)
    pegboard = None
    if rng.random() < 0.5:  # tiles or a pegboard: sharp, regular texture the lab never had
        step = max(4, int(rng.uniform(14, 40) * (width / 640)))
        shade = np.clip(base[::-1] * rng.uniform(0.85, 1.15), 0, 255)
        pegboard = (step, shade, int(rng.integers(step)), int(rng.integers(step)))

    def draw(w_out: int, h_out: int) -> np.ndarray:
        out = cv2.resize(img, (w_out, h_out), interpolation=cv2.INTER_LINEAR)
        if pegboard is not None:
            step, shade, x0, y0 = pegboard
            k = w_out / width
            full = max(1, int(width / 640))  # line width in the full-size picture
            thick = max(1, int(full * k))
            faint = min(1.0, full * k / thick)  # a line thinner than a pixel is seen fainter
            color = (shade * faint + base[::-1] * (1 - faint)).astype(int).tolist()
            wall = bench * height // h
            for x in range(x0, width, step):
                cv2.line(out, (int(x * k), 0), (int(x * k), int(wall * k)), color, thick)
            for y in range(y0, wall, step):
                cv2.line(out, (0, int(y * k)), (w_out, int(y * k)), color, thick)
        return out

    return draw


# --- putting an object into a scene --------------------------------------------------------------------

def random_placement(rng: np.random.Generator, extent, width: int, height: int) -> Placement:
    """A pose as the paper's photos had them: upright, upside-down or sideways, tilted, at a distance (the object
    spans 50-94 % of the frame's height or width), anywhere in the picture but always entirely in it."""
    pose = rng.random()
    base = 0.0 if pose < 0.5 else 180.0 if pose < 0.7 else rng.choice([90.0, -90.0])
    angle = base + min(max(rng.normal(0, 12), -30.0), 30.0)
    bw, bh = rotated_size(extent, angle)
    biggest = min(0.94 * height / bh, 0.94 * width / bw)
    scale = biggest * math.exp(rng.uniform(math.log(0.55), 0))
    half_w, half_h = bw * scale / 2, bh * scale / 2
    return Placement(rng.uniform(half_w, width - half_w), rng.uniform(half_h, height - half_h), scale, angle)


def rotated_size(extent, angle: float) -> tuple[float, float]:
    """Width and height (object units) of the bounding box of an extent turned by `angle`."""
    x0, y0, x1, y1 = extent
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    return (x1 - x0) * c + (y1 - y0) * s, (x1 - x0) * s + (y1 - y0) * c


def affine(sprite: Sprite, where: Placement) -> np.ndarray:
    """2x3 matrix taking sprite pixels to frame pixels (plain floats: numpy is slow on a few numbers)."""
    x0, y0, x1, y1 = sprite.extent
    k = where.scale / sprite.px
    a, b = math.cos(math.radians(where.angle)), math.sin(math.radians(where.angle))
    # Rotation [[a, b], [-b, a]]: counter-clockwise on screen (y down), as cv2.getRotationMatrix2D.
    ox, oy = sprite.origin[0] / sprite.px + (x0 + x1) / 2, sprite.origin[1] / sprite.px + (y0 + y1) / 2
    return np.array([[k * a, k * b, where.cx - where.scale * (a * ox + b * oy)],
                     [-k * b, k * a, where.cy - where.scale * (a * oy - b * ox)]])


def bounding_box(sprite: Sprite, where: Placement) -> tuple[float, float, float, float]:
    """Frame-pixel bounds (x0, y0, x1, y1) of the placed object."""
    x0, y0, x1, y1 = sprite.extent
    (ox, oy), px = sprite.origin, sprite.px
    return _bounds(affine(sprite, where), (x0 * px + ox, x1 * px + ox), (y0 * px + oy, y1 * px + oy))


def _bounds(M: np.ndarray, xs, ys) -> tuple[float, float, float, float]:
    """Bounds (x0, y0, x1, y1) of the corners (x, y), x in xs, y in ys, mapped by the 2x3 matrix M."""
    (a, b, c), (d, e, f) = M.tolist()
    u = [a * x + b * y + c for x in xs for y in ys]
    v = [d * x + e * y + f for x in xs for y in ys]
    return min(u), min(v), max(u), max(v)


def compose(scene: Scene, levels: tuple[Sprite, ...] | None, where: Placement | None, rng: np.random.Generator,
            motion: tuple[float, float] | None = None) -> np.ndarray:
    """The camera's picture (BGR uint8) of an object placed in a scene; `levels` None films the empty scene
    (a box, if any, comes with its object). `motion` (length px at 640 wide, angle) overrides the scene's
    motion blur, e.g. from video speed."""
    w, h = scene.size
    size = _drawn_size(w, h, scene.soft)
    frame, light = scene.background, scene.light
    if frame.shape[:2] == size[::-1]:
        frame = frame.copy()
    else:  # a scene drawn at full size (`draw_scene(full_size=True)`)
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
        light = None if light is None else cv2.resize(light, size, interpolation=cv2.INTER_LINEAR)
    if levels is not None:
        kx, ky = size[0] / w, size[1] / h
        where = Placement((where.cx + 0.5) * kx - 0.5, (where.cy + 0.5) * ky - 0.5, where.scale * kx, where.angle)
        sprite = pick_level(levels, where.scale)
        bbox = bounding_box(sprite, where)
        box = _box_geometry(scene.box, bbox) if scene.box is not None else None
        if box is not None:
            _draw_box(frame, scene.box, box["back"], (w, h))
        if scene.shadow is not None:
            _shadow(frame, levels, where, bbox, scene.shadow)
        _paste(frame, sprite, affine(sprite, where))
        if box is not None:
            _draw_box(frame, scene.box, box["front"], (w, h))
    return _camera(frame, light, scene, (w, h), rng, scene.motion if motion is None else motion)


def _paste(frame: np.ndarray, sprite: Sprite, M: np.ndarray) -> None:
    """frame = frame * T + C over the object's footprint (one 4-channel warp of the sprite)."""
    h, w = sprite.TC.shape[:2]
    x0, y0, x1, y1 = _bounds(M, (-0.5, w - 0.5), (-0.5, h - 0.5))
    x0, y0 = max(math.floor(x0), 0), max(math.floor(y0), 0)
    x1, y1 = min(math.ceil(x1) + 1, frame.shape[1]), min(math.ceil(y1) + 1, frame.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    M = M.copy()
    M[:, 2] -= (x0, y0)
    TC = cv2.warpAffine(sprite.TC, M, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 255))
    T = cv2.cvtColor(cv2.extractChannel(TC, 3), cv2.COLOR_GRAY2BGR)
    C = cv2.cvtColor(TC, cv2.COLOR_RGBA2BGR)
    roi = frame[y0:y1, x0:x1]
    cv2.add(cv2.multiply(roi, T, dst=roi, scale=1 / 255), C, dst=roi)


def _shadow(frame, levels, where, bbox, shadow, shrink: int = 8) -> None:
    """A soft cast shadow: the object's opacity, shifted and blurred (at 1/8 resolution: it is soft anyway),
    darkening what is behind it."""
    dx, dy, strength, softness = shadow
    size = max(bbox[2] - bbox[0], bbox[3] - bbox[1])
    small = Placement((where.cx + dx * size + 0.5) / shrink - 0.5, (where.cy + dy * size + 0.5) / shrink - 0.5,
                      where.scale / shrink, where.angle)
    sprite = pick_level(levels, small.scale)
    h, w = frame.shape[:2]
    T = cv2.warpAffine(cv2.extractChannel(sprite.TC, 3), affine(sprite, small),
                       (max(1, w // shrink), max(1, h // shrink)), flags=cv2.INTER_LINEAR, borderValue=255)
    T = cv2.GaussianBlur(T, (0, 0), max(0.5, softness * size / shrink))
    dark = cv2.convertScaleAbs(T, alpha=strength, beta=255 * (1 - strength))  # 255 - (255 - T) * strength
    rows, cols = (np.flatnonzero((dark < 255).any(axis=a)) for a in (1, 0))
    if rows.size == 0:
        return
    # Magnify only the part that darkens, with a margin of 255 so its edges match the full map.
    (sh, sw), (fy, fx) = dark.shape, (h / dark.shape[0], w / dark.shape[1])
    sy0, sy1, sx0, sx1 = max(0, rows[0] - 1), min(sh, rows[-1] + 2), max(0, cols[0] - 1), min(sw, cols[-1] + 2)
    y0, y1, x0, x1 = round(sy0 * fy), round(sy1 * fy), round(sx0 * fx), round(sx1 * fx)
    keep = cv2.resize(dark[sy0:sy1, sx0:sx1], (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    roi = frame[y0:y1, x0:x1]
    cv2.multiply(roi, cv2.cvtColor(keep, cv2.COLOR_GRAY2BGR), dst=roi, scale=1 / 255)


def _box_geometry(box: Box, bbox) -> dict:
    """Polygons (with a shade each) of the box behind and in front of the object."""
    x0, y0, x1, y1 = bbox
    w, h = x1 - x0, y1 - y0
    L, R = x0 - box.left * w, x1 + box.right * w
    floor_back = y1 - box.floor * h
    top = floor_back - box.back * h
    rim = y1 - box.occlusion * h
    d = max(rim - floor_back, 2.0) * 0.8
    t = box.wall * h
    bottom = rim + box.front * h
    back = [
        ([(L, top), (R, top), (R, floor_back), (L, floor_back)], 0.72),  # back wall, inner face, in shade
        ([(L, floor_back), (R, floor_back), (R + d, rim), (L - d, rim)], 0.86),  # floor
        ([(L - t, top), (L, top), (L, floor_back), (L - d, rim), (L - d - t, rim)], 0.8),  # left wall
        ([(R + t, top), (R, top), (R, floor_back), (R + d, rim), (R + d + t, rim)], 0.62),  # right wall
        ([(L - t, top - t), (R + t, top - t), (R + t, top), (L - t, top)], 1.0),  # back rim
    ]
    front = [
        ([(L - d - t, rim), (R + d + t, rim), (R + d + t, rim + t), (L - d - t, rim + t)], 1.0),  # front rim
        ([(L - d - t, rim + t), (R + d + t, rim + t), (R + d + t, bottom), (L - d - t, bottom)], 0.92),  # front face
    ]
    return {"back": back, "front": front}


def _draw_box(frame: np.ndarray, box: Box, polygons, size: tuple[int, int]) -> None:
    """Fill polygons with styrofoam: the box colour, shaded, times a bead texture. `size` is the picture's
    (width, height): a frame drawn smaller gets the texture shrunk to match, so the beads keep their size."""
    h, w = frame.shape[:2]
    xs, ys = zip(*(p for points, _ in polygons for p in points))
    x0, y0 = min(max(math.floor(min(xs)) - 1, 0), w), min(max(math.floor(min(ys)) - 1, 0), h)
    x1, y1 = min(max(math.ceil(max(xs)) + 2, 0), w), min(max(math.ceil(max(ys)) + 2, 0), h)
    if x1 <= x0 or y1 <= y0:
        return
    roi = frame[y0:y1, x0:x1]
    mask = np.zeros(roi.shape[:2], np.uint8)
    for points, shade in polygons:
        pts = np.array([(round((x - x0) * 16), round((y - y0) * 16)) for x, y in points], np.int32)  # 4 fraction bits
        color = tuple(int(min(255, c * shade)) for c in box.color[::-1])
        cv2.fillPoly(roi, [pts], color, cv2.LINE_AA, shift=4)
        cv2.fillPoly(mask, [pts], 255, cv2.LINE_8, shift=4)
    tx, ty = box.texture_at
    field = _field("styrofoam", size[1], size[0])
    if (w, h) == size:
        beads = field[y0 + ty:y1 + ty, x0 + tx:x1 + tx]
    else:
        X0, X1 = (int(x * size[0] / w) + tx for x in (x0, x1))
        Y0, Y1 = (int(y * size[1] / h) + ty for y in (y0, y1))
        beads = cv2.resize(field[Y0:Y1, X0:X1], (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    beads = cv2.max(beads, cv2.bitwise_not(mask))  # 255 (no change) outside the box
    cv2.multiply(roi, cv2.cvtColor(beads, cv2.COLOR_GRAY2BGR), dst=roi, scale=1 / 255)


def _camera(frame: np.ndarray, light: np.ndarray | None, scene: Scene, size: tuple[int, int],
            rng: np.random.Generator, motion) -> np.ndarray:
    """Light, optics and sensor: gain map with colour cast and murk, magnification to `size` (a soft camera's
    picture is drawn smaller) or sharpening, motion blur, exposure and noise."""
    w, h = size
    out = frame
    if light is not None:
        out = cv2.multiply(out, light, scale=1 / 255)
    if any(scene.haze):
        out = cv2.add(out, (*scene.haze, 0))
    if out.shape[:2] != (h, w):
        out = cv2.resize(out, size, interpolation=cv2.INTER_LINEAR)
    if scene.sharpen:
        out = cv2.addWeighted(out, 1 + scene.sharpen, _soften(out, 0.5), -scene.sharpen, 0)
    length = min(motion[0], 80) * w / 640
    if length >= 2:
        out = _motion_blur(out, length, motion[1])
    oy, ox = rng.integers(0, _TILE, 2)
    noise = _field("noise", h, w)[oy:oy + h, ox:ox + w]
    k = scene.noise / _NOISE_SIGMA
    return cv2.addWeighted(out, scene.gain, noise, k, -128 * k)


def _soften(img: np.ndarray, factor: float) -> np.ndarray:
    """What a camera with `factor` times the resolution would resolve (down, then up again)."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _motion_blur(img: np.ndarray, length: float, angle: float) -> np.ndarray:
    """Smear along a direction. Long smears are made at reduced resolution: they leave no fine detail anyway."""
    shrink = int(min(8, max(1, length // 8)))
    if shrink == 1:
        return cv2.filter2D(img, -1, _motion_kernel(length, angle))
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, w // shrink), max(1, h // shrink)), interpolation=cv2.INTER_AREA)
    small = cv2.filter2D(small, -1, _motion_kernel(length / shrink, angle))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _motion_kernel(length: float, angle: float) -> np.ndarray:
    n = int(np.ceil(length)) | 1
    k = np.zeros((n, n), np.float32)
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    half = (length - 1) / 2
    cv2.line(k, (int(round(n // 2 - c * half)), int(round(n // 2 - s * half))),
             (int(round(n // 2 + c * half)), int(round(n // 2 + s * half))), 1.0, 1)
    return k / k.sum()


@lru_cache(maxsize=4)
def _field(kind: str, h: int, w: int) -> np.ndarray:
    """A fixed texture ("noise" or "styrofoam") tiled to a frame plus room for a random offset."""
    tile = _noise_tile() if kind == "noise" else _styrofoam_tile()
    reps = (-(-(h + _TILE) // _TILE), -(-(w + _TILE) // _TILE)) + (1,) * (tile.ndim - 2)
    return np.ascontiguousarray(np.tile(tile, reps)[: h + _TILE, : w + _TILE])


def _noise_tile() -> np.ndarray:
    """Gaussian sensor noise around 128 with sigma _NOISE_SIGMA."""
    tile = np.random.default_rng(7).normal(128, _NOISE_SIGMA, (_TILE, _TILE, 3))
    return np.clip(tile, 0, 255).astype(np.uint8)


def _styrofoam_tile() -> np.ndarray:
    """Expanded-polystyrene texture (grey, one channel): packed beads with faint dark seams, values about
    200..255."""
    rng = np.random.default_rng(11)
    tile = np.full((_TILE, _TILE), 250, np.uint8)
    for x, y, r in zip(rng.integers(0, _TILE, 2600), rng.integers(0, _TILE, 2600), rng.integers(3, 7, 2600)):
        cv2.circle(tile, (int(x), int(y)), int(r), 205, 1, cv2.LINE_AA)
    return cv2.GaussianBlur(tile, (0, 0), 0.8)
