"""The nine glassware classes as drawable objects ("sprites").

An object is drawn once per (class, variant, resolution) in its own upright frame and cached; a scene then
places it with one affine warp. A sprite holds, per pixel, how much of the light behind it passes
(transmittance `T`) and how much light the object adds itself (`C`): frame = background * T / 255 + C.
So glass is tinted by whatever lies behind it, while labels, caps and opaque bodies cover it.

Object units: the object is 1 unit tall, y grows downwards from its top (0) to its bottom (1), x = 0 is
its axis. Bodies are surfaces of revolution given by a radius profile r(y); shading uses the true normal of
that surface, labels wrap around it (a label is drawn in arc-length coordinates), and a variant turns the
object about its axis so the label is seen from different sides, as when a flask is put down again.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import cv2
import numpy as np

_LIGHT = np.array([-0.45, -0.55, 0.70]) / np.linalg.norm([-0.45, -0.55, 0.70])  # upper left, in front
_HALF = (_LIGHT + [0, 0, 1]) / np.linalg.norm(_LIGHT + [0, 0, 1])
_LIGHT, _HALF = _LIGHT.tolist(), _HALF.tolist()  # plain floats: float32 fields stay float32
VARIANTS = 6  # turns about the axis per class (label phases); `other` has OTHER_VARIANTS different vessels
OTHER_VARIANTS = 28
_PHASES = np.radians([-55, -30, -10, 10, 30, 60])
MIN_PX = 40  # smallest pyramid level (pixels per object unit)
_BEHIND = 170.0  # typical brightness behind an object: turns coloured transmittance into added colour


@dataclass(frozen=True)
class Sprite:
    """One resolution of a drawn object. `TC` packs the light it adds (C, RGB) and its transmittance (T,
    255 = fully transparent) in one 4-channel image, so a placement is a single warp. `origin` is the pixel
    of object point (0, 0); `extent` the tight bounds (x0, y0, x1, y1) of the drawn pixels in object units."""

    TC: np.ndarray  # uint8 (h, w, 4)
    px: float  # pixels per object unit
    origin: tuple[float, float]
    extent: tuple[float, float, float, float]


def variants(class_name: str) -> int:
    return OTHER_VARIANTS if class_name == "other" else VARIANTS


@lru_cache(maxsize=256)
def pyramid(class_name: str, variant: int, size: int) -> tuple[Sprite, ...]:
    """The object drawn `size` pixels along its longer side, then halved down to MIN_PX pixels per unit
    (so any scale is reached by shrinking at most 2x: no aliasing)."""
    half_width, top, bottom = _bounds(class_name, variant)
    canvas = _Canvas(size / max(1 + top + bottom, 2 * half_width), half_width, top, bottom)
    _DESIGNS[class_name](canvas, variant)
    levels = [canvas.sprite()]
    while levels[-1].px / 2 >= MIN_PX:
        s = levels[-1]
        h, w = s.TC.shape[:2]
        half = (max(1, round(w / 2)), max(1, round(h / 2)))
        fx, fy = half[0] / w, half[1] / h
        levels.append(Sprite(cv2.resize(s.TC, half, interpolation=cv2.INTER_AREA), s.px * fy,
                             ((s.origin[0] + 0.5) * fx - 0.5, (s.origin[1] + 0.5) * fy - 0.5), s.extent))
    return tuple(levels)


def pick_level(levels: tuple[Sprite, ...], scale: float) -> Sprite:
    """The smallest level that is still at least as detailed as the wanted scale (px per unit)."""
    for s in reversed(levels):
        if s.px >= scale * 0.98:
            return s
    return levels[0]


# --- drawing -------------------------------------------------------------------------------------------

class _Canvas:
    """Pixel grid in object units with the running (T, C) of the layers added so far, back to front.
    Colours are kept channel-first, (3, h, w): numpy is slow at broadcasting over a last axis of 3."""

    def __init__(self, px: float, half_width: float, top: float, bottom: float):
        self.px = px
        h, w = int(np.ceil((1 + top + bottom) * px)), int(np.ceil(2 * half_width * px)) | 1
        self.top = top
        self.y = ((np.arange(h) + 0.5) / px - top)[:, None].astype(np.float32)
        self.x = ((np.arange(w) - w // 2) / px)[None, :].astype(np.float32)
        self.origin = (w // 2, top * px - 0.5)
        self.T = np.ones((h, w), np.float32)
        self.C = np.zeros((3, h, w), np.float32)
        self.at = (0, 0)  # (row, column) of this view's first pixel in the whole canvas

    def rows(self, profile: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        return np.maximum(profile(self.y[:, 0].astype(np.float64)), 0).astype(np.float32)

    def view(self, rows: slice, cols: slice) -> "_Canvas":
        """A window of this canvas (drawing into it draws into this canvas); `rows`, `cols` with explicit ends."""
        view = copy.copy(self)
        view.y, view.x = self.y[rows], self.x[:, cols]
        view.T, view.C = self.T[rows, cols], self.C[:, rows, cols]
        view.at = (self.at[0] + rows.start, self.at[1] + cols.start)
        view.origin = (self.origin[0] - cols.start, self.origin[1] - rows.start)
        return view

    def on(self, s: "_Surface") -> "_Canvas":
        """The window of this canvas that surface `s` was computed for."""
        r0, c0 = s.at[0] - self.at[0], s.at[1] - self.at[1]
        return self.view(slice(r0, r0 + s.cover.shape[0]), slice(c0, c0 + s.cover.shape[1]))

    def band(self, y0: float, y1: float) -> tuple["_Canvas", slice]:
        """A view of the rows from y0 to y1 and their slice."""
        first = int((y0 + self.top) * self.px) - 1 - self.at[0]
        last = int((y1 + self.top) * self.px) + 2 - self.at[0]
        rows = slice(min(max(0, first), len(self.y)), max(0, min(len(self.y), last)))
        return self.view(rows, slice(0, self.x.shape[1])), rows

    def add(self, cover: np.ndarray, T, C) -> None:
        """Lay a layer over what is there: `cover` 0..1 (h, w), T 0..1 (grey, or RGB (3,) or (3, h, w) for
        coloured glass or liquid), C 0..255 (grey, or RGB (3,) or (3, h, w)). Coloured transmittance is kept as
        its grey minimum plus the colour it would give a mid-grey background, so one warp channel carries T."""
        T, C = (_channels_first(v) for v in (T, C))
        if T.ndim == 3:
            grey = T.min(axis=0)
            C = C + (T - grey) * _BEHIND
            T = grey
        a = cover.astype(np.float32)
        used = np.flatnonzero(a.max(axis=1) > 0)  # most layers touch few rows: work only on those
        if used.size == 0:
            return
        rows = slice(used[0], used[-1] + 1)
        a = a[rows]
        T, C = (v[..., rows, :] if v.ndim >= 2 and v.shape[-2] == len(self.y) else v for v in (T, C))
        t = 1 - a * (1 - T)
        self.C[:, rows] *= t
        self.C[:, rows] += a * C
        self.T[rows] *= t

    def sprite(self) -> Sprite:
        """The drawing, cropped to what was drawn plus a transparent pixel (a placement warps all of it)."""
        T = cv2.convertScaleAbs(self.T, alpha=255)  # rounded and clipped to 0..255
        C = [cv2.convertScaleAbs(channel) for channel in self.C]
        drawn = (T < 250) | (np.maximum(np.maximum(C[0], C[1]), C[2]) > 4)
        ys, xs = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
        ox, oy = self.origin
        extent = ((xs[0] - ox) / self.px, (ys[0] - oy) / self.px,
                  (xs[-1] + 1 - ox) / self.px, (ys[-1] + 1 - oy) / self.px)
        y0, x0 = max(ys[0] - 1, 0), max(xs[0] - 1, 0)
        crop = (slice(y0, ys[-1] + 2), slice(x0, xs[-1] + 2))
        return Sprite(cv2.merge([C[0][crop], C[1][crop], C[2][crop], T[crop]]), float(self.px),
                      (float(ox - x0), float(oy - y0)), tuple(float(e) for e in extent))


@dataclass
class _Surface:
    """A surface of revolution seen from the front: coverage, normal and angle about the axis per pixel."""

    r: np.ndarray  # (h, 1) radius per row
    cover: np.ndarray  # (h, w) 0..1, anti-aliased silhouette
    u: np.ndarray  # x / r: sin of the angle about the axis, -1..1
    nz: np.ndarray  # cos of that angle
    diffuse: np.ndarray  # Lambert term of the key light
    spec: np.ndarray  # specular highlight of the key light
    at: tuple[int, int]  # (row, column) in the canvas of the window these fields cover: the body's bounds

    def __getitem__(self, rows: slice) -> "_Surface":
        fields = (getattr(self, f)[rows] for f in ("r", "cover", "u", "nz", "diffuse", "spec"))
        return _Surface(*fields, (self.at[0] + rows.start, self.at[1]))


def _channels_first(v) -> np.ndarray:
    """float32; an RGB triple (3,) becomes (3, 1, 1) so it broadcasts over (3, h, w)."""
    v = np.asarray(v, np.float32)
    return v[:, None, None] if v.ndim == 1 else v


def _coverage(r, x, px):
    """Anti-aliased |x| < r (a row of radius 0 covers nothing)."""
    return np.clip(np.minimum((r - np.abs(x)) * px + 0.5, r * px), 0, 1)


def _surface(c: _Canvas, r_rows: np.ndarray, shininess: float = 60) -> _Surface:
    """The fields of a body of radius r_rows (one per canvas row), computed only inside its bounds: a cap or
    a neck covers a small part of the canvas."""
    slope = np.clip(np.gradient(r_rows, 1 / c.px), -4, 4)[:, None]  # dr/dy; steps (neck, cap) are clipped
    body = np.flatnonzero(r_rows > 0)
    rows = slice(int(body[0]), int(body[-1]) + 1) if body.size else slice(0, 0)
    inside = np.flatnonzero(np.abs(c.x[0]) < r_rows.max(initial=0) + 1 / c.px)  # antialiasing reaches 0.5 px out
    cols = slice(int(inside[0]), int(inside[-1]) + 1) if inside.size else slice(0, 0)
    c = c.view(rows, cols)
    r, slope = r_rows[rows, None], slope[rows]
    cover = _coverage(r, c.x, c.px)
    u = np.clip(c.x / np.maximum(r, 1e-4), -1, 1)
    nz = np.sqrt(1 - u * u)
    norm = np.sqrt(1 + slope * slope)
    nx, ny, nzz = u / norm, -slope / norm, nz / norm
    diffuse = np.clip(nx * _LIGHT[0] + ny * _LIGHT[1] + nzz * _LIGHT[2], 0, 1)
    spec = np.clip(nx * _HALF[0] + ny * _HALF[1] + nzz * _HALF[2], 0, 1) ** shininess
    return _Surface(r, cover, u, nz, diffuse, spec, c.at)


def _glass(c: _Canvas, s: _Surface, absorb=(0.05, 0.025, 0.035), frosted: tuple[float, float] | None = None) -> None:
    """Two clear walls: tinted more at grazing angles, dark-rimmed silhouette, key highlight and a softbox stripe.
    `frosted`: the rows (y0, y1) of a ground-glass joint."""
    c = c.on(s)
    thickness = 1 / np.maximum(s.nz, 0.1)
    fresnel = 0.04 + 0.55 * np.square(np.square(1 - s.nz))  # (1 - nz) ** 4; numpy's power is slow
    rim = np.clip((np.abs(s.u) - 0.86) / 0.14, 0, 1) ** 2
    T = np.exp(-_channels_first(absorb) * thickness) * (1 - fresnel - 0.55 * rim)
    stripe = np.exp(-(((s.u - 0.55) / 0.07) ** 2)) * 0.45 + np.exp(-(((s.u + 0.72) / 0.05) ** 2)) * 0.25
    glow = fresnel * 55 + (s.spec * 0.9 + stripe) * 255  # dark silhouette on light and dark grounds
    if frosted is not None:  # ground-glass joint: scatters, so milky and less transparent
        ground = ((c.y > frosted[0]) & (c.y < frosted[1])).astype(np.float32)
        T = T * (1 - 0.45 * ground)
        glow = glow + 70 * ground
    c.add(s.cover, T, glow)


def _opaque(c: _Canvas, s: _Surface, albedo, cover=None, gloss: float = 0.5, pattern=None) -> None:
    """A solid body (plastic, metal, paint, a cap): shaded albedo (RGB, or (3, h, w)), or a pattern
    (3, h, w) 0..1."""
    c = c.on(s)
    color = _channels_first(albedo if pattern is None else pattern)
    C = color * (0.42 + 0.6 * s.diffuse) * 255 + gloss * 255 * s.spec
    c.add(s.cover if cover is None else cover, 0.0, C)


def _contents(c: _Canvas, s: _Surface, level: float, absorb, scatter, wall: float = 0.012) -> None:
    """Liquid or gel filling the vessel from `level` down: coloured by how far light travels through it."""
    c = c.on(s)
    r_in = np.maximum(s.r - wall, 0)
    inside = _coverage(r_in, c.x, c.px) * np.clip((c.y - level) * c.px + 0.5, 0, 1)
    depth = 2 * r_in * np.sqrt(np.clip(1 - (c.x / np.maximum(r_in, 1e-4)) ** 2, 0, 1))
    T = np.exp(-_channels_first(absorb) * (depth * 12))
    C = _channels_first(scatter) * ((1 - np.exp(-depth * 10)) * 255 * (0.7 + 0.4 * s.diffuse))
    meniscus = np.exp(-(((c.y - level) * c.px / 1.5) ** 2)) * inside
    c.add(inside, T, C)
    c.add(meniscus, 0.55, 150)


def _wrap(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


def _label(c: _Canvas, s: _Surface, y0: float, y1: float, half_angle: float, phase: float,
           painter: Callable, see_through: bool = True) -> None:
    """A paper label around the body between y0 and y1, turned by `phase` (radians; 0 = facing the camera).
    The painter gets arc length (units, 0 = label centre) and v (0..1 down the label) and returns RGB 0..1,
    channels first (3, h, w). Through clear glass the back of a label shows as plain paper."""
    c, rows = c.on(s).band(y0, y1)
    s = s[rows]
    theta = np.arcsin(s.u)
    within = np.clip((c.y - y0) * c.px + 0.5, 0, 1) * np.clip((y1 - c.y) * c.px + 0.5, 0, 1)
    front = _wrap(theta - phase)
    if see_through:
        back = _wrap(np.pi - theta - phase)
        seen_back = within * s.cover * (np.abs(back) < half_angle)
        c.add(seen_back, 0.0, np.array([0.8, 0.8, 0.76]) * 255 * 0.55)
    on = within * s.cover * np.clip((half_angle - np.abs(front)) * s.r * c.px * np.maximum(s.nz, 0.05), 0, 1)
    v = np.clip((c.y - y0) / (y1 - y0), 0, 1) * np.ones_like(c.x)
    _opaque(c, s, None, cover=on, gloss=0.25, pattern=painter(front * s.r, v))


def _bands(c: _Canvas, s: _Surface, centres, width: float, T: float, C: float) -> None:
    """Horizontal lines on a surface: screw threads, rims, graduation marks."""
    c = c.on(s)
    band = sum(np.exp(-(((c.y - yc) / width) ** 2)) for yc in centres)
    c.add(np.clip(band, 0, 1) * s.cover, T, C)


def _rim(c: _Canvas, r0: float, y0: float = 0.0, ratio: float = 0.22) -> None:
    """The open top seen slightly from above: a thin glass ellipse."""
    ry = max(r0 * ratio, 1.5 / c.px)
    d = np.sqrt((c.x / max(r0, 1e-4)) ** 2 + ((c.y - y0) / ry) ** 2)
    ring = np.clip(1 - np.abs(d - 1) * min(r0, ry) * c.px / 1.2, 0, 1)
    c.add(ring, 0.45, 120)


# --- label designs (painters: arc length s, v 0..1 -> RGB 0..1, channels first) ---------------------------

def _fill(s, color):
    out = np.empty((3,) + s.shape, np.float32)
    out[:] = _channels_first(color)
    return out


def _text(s, v, lines, height, seed, length=0.9):
    """Lines of 'words': dark marks in rows, broken at word and letter gaps. Returns a 0..1 mask."""
    rng = np.random.default_rng(seed)
    bounds = np.cumsum(rng.uniform(0.015, 0.06, 64)) - length / 2
    word = (np.searchsorted(bounds, s) % 2 == 0) & (np.abs(s) < length / 2)
    letters = np.sin(s * 260 + np.sin(s * 97) * 2) > -0.55
    mask = np.zeros(s.shape, bool)
    for vc in lines:
        mask |= np.abs(v - vc) < height / 2
    return (mask & word & letters).astype(np.float32)


def _paint(base, *layers):
    """Paint (mask, colour) layers over a base image."""
    for mask, color in layers:
        m = mask.astype(np.float32)
        base = base * (1 - m) + m * _channels_first(color)
    return base


def _label_a(s, v):  # white, red head band, black text
    return _paint(_fill(s, (0.95, 0.95, 0.91)), (v < 0.3, (0.82, 0.08, 0.08)),
                  (_text(s, v, (0.45, 0.62, 0.8), 0.09, 1, 0.34), (0.08, 0.08, 0.08)))


def _label_b(s, v):  # yellow, black hazard stripes at the bottom, black square logo
    stripes = (np.sin((s * 70 + v * 8)) > 0) & (v > 0.68)
    logo = (np.abs(s + 0.05) < 0.035) & (np.abs(v - 0.36) < 0.2)
    return _paint(_fill(s, (0.98, 0.82, 0.12)), (stripes, (0.05, 0.05, 0.05)), (logo, (0.1, 0.1, 0.1)),
                  (_text(s, v, (0.25, 0.45), 0.1, 2, 0.3) * (s > 0), (0.1, 0.1, 0.1)))


def _label_c(s, v):  # white with a thick blue border, barcode in the middle
    rng = np.random.default_rng(3)
    bars = np.cumsum(rng.uniform(0.002, 0.007, 40)) - 0.055
    code = (np.searchsorted(bars, s) % 2 == 0) & (np.abs(s) < 0.055) & (np.abs(v - 0.6) < 0.22)
    border = (v < 0.14) | (v > 0.86) | (np.abs(s) > 0.085)
    return _paint(_fill(s, (0.96, 0.96, 0.96)), (border, (0.12, 0.25, 0.75)), (code, (0.05, 0.05, 0.05)),
                  (_text(s, v, (0.27,), 0.08, 3, 0.14), (0.1, 0.15, 0.5)))


def _label_d(s, v):  # green, white round logo left, white text right
    logo = (s + 0.06) ** 2 + ((v - 0.5) * 0.18) ** 2 < 0.045 ** 2
    dot = (s + 0.06) ** 2 + ((v - 0.5) * 0.18) ** 2 < 0.02 ** 2
    return _paint(_fill(s, (0.1, 0.55, 0.25)), (logo, (0.97, 0.97, 0.95)), (dot, (0.1, 0.55, 0.25)),
                  (_text(s, v, (0.3, 0.5, 0.7), 0.1, 4, 0.26) * (s > 0.0), (0.96, 0.96, 0.9)))


def _label_e(s, v):  # disinfectant: blue top with white wave, white bottom, red warning diamond, text
    wave = np.abs(v - 0.42 - 0.05 * np.sin(s * 40)) < 0.04
    diamond = np.abs(s - 0.05) + np.abs(v - 0.72) * 0.12 < 0.035
    return _paint(_fill(s, (0.95, 0.95, 0.95)), (v < 0.45, (0.1, 0.3, 0.72)), (wave, (0.95, 0.95, 0.95)),
                  (diamond, (0.85, 0.12, 0.1)), (_text(s, v, (0.2,), 0.1, 5, 0.26), (0.97, 0.97, 0.97)),
                  (_text(s, v, (0.64, 0.8), 0.07, 6, 0.2) * (s < 0.0), (0.1, 0.1, 0.1)))


# --- the classes ---------------------------------------------------------------------------------------

def _circle(y, cy, R, flat=None):
    r = np.sqrt(np.clip(R * R - (y - cy) ** 2, 0, None))
    return r if flat is None else np.where(y < flat, r, 0)


def _ellipse(y, cy, ry, rx):
    return rx * np.sqrt(np.clip(1 - ((y - cy) / ry) ** 2, 0, None))


def _span(y, y0, y1, r0, r1=None):
    """Radius r0 (tapering linearly to r1) for y0 <= y < y1, else 0."""
    r1 = r0 if r1 is None else r1
    t = (y - y0) / (y1 - y0)
    return np.where((y >= y0) & (y < y1), r0 + (r1 - r0) * t, 0)


def _flask_a(c, variant):  # round-bottom flask, long narrow neck, lipped rim
    r = c.rows(lambda y: np.maximum.reduce([_span(y, 0, 0.03, 0.088), _span(y, 0.03, 0.48, 0.07),
                                            _circle(y, 0.71, 0.29, flat=0.995)]))
    s = _surface(c, r)
    _label(c, s, 0.6, 0.85, 1.0, _PHASES[variant], _label_a)
    _glass(c, s)
    _rim(c, 0.088)


def _flask_b(c, variant):  # flat-bottom flask, wide short neck with a beaded lip
    r = c.rows(lambda y: np.maximum.reduce([_span(y, 0, 0.05, 0.13), _span(y, 0.05, 0.42, 0.105),
                                            _circle(y, 0.69, 0.3, flat=0.97)]))
    s = _surface(c, r)
    _label(c, s, 0.5, 0.78, 1.1, _PHASES[variant], _label_b)
    _glass(c, s)
    _bands(c, s, (0.025,), 0.012, 0.5, 60)
    _rim(c, 0.13)


def _flask_c(c, variant):  # egg-shaped (elliptical) body, neck with a ground-glass joint
    r = c.rows(lambda y: np.maximum.reduce([_span(y, 0, 0.2, 0.085, 0.07), _span(y, 0.2, 0.4, 0.065),
                                            _ellipse(y, 0.66, 0.33, 0.22)]))
    s = _surface(c, r)
    _label(c, s, 0.52, 0.8, 0.95, _PHASES[variant], _label_c)
    _glass(c, s, frosted=(0.015, 0.19))
    _rim(c, 0.085)


def _flask_d(c, variant):  # big round body, short wide threaded neck
    r = c.rows(lambda y: np.maximum.reduce([_span(y, 0, 0.24, 0.12), _span(y, 0.24, 0.33, 0.11),
                                            _circle(y, 0.655, 0.34, flat=0.99)]))
    s = _surface(c, r)
    _label(c, s, 0.55, 0.8, 0.85, _PHASES[variant], _label_d)
    _glass(c, s)
    _bands(c, s, np.arange(0.04, 0.2, 0.035), 0.007, 0.45, 70)
    _rim(c, 0.12)


def _cap(c, y0, y1, radius, color, ridges=28, top=None):
    r = c.rows(lambda y: _span(y, y0, y1, radius) if top is None else np.maximum(
        _span(y, y0 + top[0], y1, radius), _span(y, y0, y0 + top[0], top[1])))
    s = _surface(c, r, shininess=30)
    grip = 0.82 + 0.18 * np.cos(np.arcsin(s.u) * ridges)
    _opaque(c, s, _channels_first(color) * grip, gloss=0.45)


def _bottle_e(c, variant):  # white plastic disinfectant bottle, labelled, red flip cap
    corner = 0.05  # rounded bottom edge

    def profile(y):
        rounded = np.where((y >= 1 - corner) & (y < 1), 0.17 - corner + _ellipse(y, 1 - corner, corner, corner), 0)
        return np.maximum.reduce([_span(y, 0.17, 0.23, 0.075), _ellipse(y, 0.32, 0.1, 0.17) * (y < 0.32),
                                  _span(y, 0.32, 1 - corner, 0.17), rounded])

    r = c.rows(profile)
    s = _surface(c, r, shininess=25)
    _opaque(c, s, (0.93, 0.93, 0.9), gloss=0.35)
    _label(c, s, 0.42, 0.86, 1.05, _PHASES[variant], _label_e, see_through=False)
    _cap(c, 0.0, 0.17, 0.092, (0.82, 0.08, 0.07), top=(0.05, 0.045))


def _gel_bottle(c, variant, g: bool):
    """F and G: the same kind of clear bottle of blue gel with a blue cap. G has a tall narrow cap with a white
    tamper ring, a conical (not rounded) shoulder and much more gel."""
    if g:
        cap, cap_r, neck, level, body_top = 0.22, 0.078, (0.22, 0.28), 0.34, 0.4
        shoulder = lambda y: _span(y, 0.28, body_top, 0.07, 0.165)  # noqa: E731
    else:
        cap, cap_r, neck, level, body_top = 0.075, 0.095, (0.075, 0.15), 0.62, 0.3
        shoulder = lambda y: _ellipse(y, body_top, 0.15, 0.165) * (y < body_top) * (y >= 0.15)  # noqa: E731
    r = c.rows(lambda y: np.maximum.reduce([_span(y, *neck, 0.07), shoulder(y), np.maximum(
        _span(y, body_top, 0.97, 0.165), _span(y, 0.97, 1.0, 0.16))]))
    s = _surface(c, r)
    _contents(c, s, level, absorb=(1.4, 0.8, 0.12), scatter=(0.05, 0.2, 0.55))
    _beads(c, s, level, variant)
    _glass(c, s, absorb=(0.02, 0.015, 0.01))
    _cap(c, 0.0, cap, cap_r, (0.1, 0.28, 0.85), ridges=36)
    if g:
        _cap(c, cap - 0.03, cap, cap_r + 0.006, (0.93, 0.93, 0.9), ridges=0)


def _beads(c, s, level, seed):
    """Gel beads: small bright discs in the gel."""
    c = c.on(s)
    rng = np.random.default_rng(100 + seed)
    out = np.zeros(s.cover.shape, np.uint8)
    ox, oy = c.origin
    for x, y in zip(rng.uniform(-0.13, 0.13, 40), rng.uniform(level + 0.03, 0.96, 40)):
        centre = (int(round((ox + x * c.px) * 16)), int(round((oy + y * c.px) * 16)))
        cv2.circle(out, centre, int(round(0.012 * c.px * 16)), 255, -1, cv2.LINE_AA, shift=4)
    c.add(out.astype(np.float32) / 255 * s.cover, 0.6, (90, 150, 250))


def _glass_j(c, variant):  # plain tumbler: flared, thick base, nothing else
    r = c.rows(lambda y: np.where(y < 0.995, 0.3 - 0.05 * y, 0))
    s = _surface(c, r)
    _glass(c, s)
    body = c.on(s)
    body.add(np.clip((body.y - 0.86) * c.px, 0, 1) * s.cover, 0.72, 55)
    _bands(c, s, (0.86,), 0.006, 0.5, 60)
    _rim(c, 0.3)


# --- `other`: unrelated vessels and controls (Vector-LabPics stood in for these in the paper) ----------

_LIQUIDS = [((0.15, 1.0, 1.2), (0.6, 0.25, 0.05)), ((1.2, 0.2, 1.0), (0.1, 0.5, 0.1)),
            ((0.1, 0.6, 1.5), (0.55, 0.35, 0.05)), ((0.2, 1.5, 0.4), (0.5, 0.05, 0.4)),
            ((0.6, 0.6, 0.6), (0.3, 0.3, 0.3)), ((0.05, 0.08, 0.3), (0.3, 0.25, 0.1))]


def _other(c, variant):
    rng = np.random.default_rng(1000 + variant)
    kind = _OTHER_KINDS[variant % len(_OTHER_KINDS)]
    kind(c, rng)


def _liquid(c, s, rng, lo=0.3, hi=0.85, p=1.0):
    """Contents of a random colour filled to a random level (with probability p). Clear vessels in `other`
    are almost always filled: an empty clear cylinder would be the drinking glass J."""
    if rng.random() < p:
        absorb, scatter = _LIQUIDS[rng.integers(len(_LIQUIDS))]
        _contents(c, s, rng.uniform(lo, hi), absorb, scatter)


def _beaker(c, rng):
    rw = rng.uniform(0.36, 0.46)
    r = c.rows(lambda y: _span(y, 0, 0.99, rw))
    s = _surface(c, r)
    _liquid(c, s, rng, 0.35, 0.8)
    _glass(c, s)
    body = c.on(s)
    y, x = body.y, body.x
    marks = (np.abs(((y - 0.2) / 0.1) % 1 - 0.5) > 0.44) & (y > 0.15) & (y < 0.9) & (np.abs(x + 0.1) < 0.06)
    body.add(marks * s.cover, 0.2, 220)
    c.add(np.clip(1 - np.hypot(c.x + rw, c.y - 0.02) / 0.04, 0, 1), 0.5, 120)  # spout
    _rim(c, rw, ratio=0.18)


def _erlenmeyer(c, rng):
    r = c.rows(lambda y: np.maximum.reduce([_span(y, 0, 0.3, 0.07), _span(y, 0.3, 0.99, 0.07, 0.36)]))
    s = _surface(c, r)
    _liquid(c, s, rng, 0.55, 0.85)
    _glass(c, s)
    _rim(c, 0.07)


def _test_tube(c, rng):
    r = c.rows(lambda y: np.maximum(_span(y, 0, 0.94, 0.06), _circle(y, 0.94, 0.06)))
    s = _surface(c, r)
    _liquid(c, s, rng, 0.35, 0.8)
    _glass(c, s)
    if rng.random() < 0.5:
        _cap(c, 0.0, 0.09, 0.068, rng.uniform(0.1, 0.9, 3), ridges=0)
    else:
        _rim(c, 0.06)


def _pipette(c, rng):
    r = c.rows(lambda y: np.maximum.reduce([_span(y, 0.25, 0.9, 0.025), _span(y, 0.9, 1.0, 0.025, 0.006)]))
    s = _surface(c, r)
    _liquid(c, s, rng, 0.6, 0.9, p=0.5)
    _glass(c, s)
    _bands(c, s, np.arange(0.35, 0.85, 0.05), 0.003, 0.3, 40)
    bulb = c.rows(lambda y: np.maximum(_circle(y, 0.1, 0.09), _span(y, 0.1, 0.26, 0.045)))
    _opaque(c, _surface(c, bulb), rng.choice([(0.75, 0.1, 0.08), (0.12, 0.12, 0.12), (0.9, 0.55, 0.2)]), gloss=0.3)


def _cylinder(c, rng):
    r = c.rows(lambda y: np.maximum(_span(y, 0, 0.93, 0.085), _span(y, 0.93, 1.0, 0.2)))
    s = _surface(c, r)
    _liquid(c, s, rng, 0.3, 0.8)
    _glass(c, s)
    _bands(c, s, np.arange(0.12, 0.9, 0.04), 0.003, 0.35, 30)
    _rim(c, 0.085)


def _can(c, rng):
    rw = rng.uniform(0.24, 0.32)
    r = c.rows(lambda y: np.maximum(_span(y, 0.02, 0.98, rw), _span(y, 0, 0.02, rw - 0.02)))
    s = _surface(c, r, shininess=20)
    colors = rng.uniform(0.05, 0.95, (3, 3))
    theta = np.arcsin(s.u) + rng.uniform(0, 6)
    y = c.on(s).y
    stripe = np.where(np.sin(theta * rng.integers(1, 4) + y * rng.uniform(0, 12)) > 0, 0, 1)
    pattern = np.where((y < 0.08) | (y > 0.92), 2, stripe)
    metal = np.asarray([(0.75, 0.75, 0.78)], np.float32)
    _opaque(c, s, None, gloss=0.9, pattern=np.concatenate([colors[:2], metal]).T[:, pattern])


def _mug(c, rng):
    rw = rng.uniform(0.32, 0.42)
    color = rng.uniform(0.1, 0.95, 3)
    handle = np.hypot((c.x - rw - 0.1) / 0.15, (c.y - 0.45) / 0.28)
    ring = np.clip((0.14 - np.abs(handle - 0.78)) * c.px * 0.5, 0, 1) * (c.x > rw - 0.02)
    c.add(ring, 0.0, color * 0.8 * 255)
    s = _surface(c, c.rows(lambda y: _span(y, 0.0, 1.0, rw, rw * 0.9)), shininess=30)
    _opaque(c, s, color, gloss=0.6)
    _rim(c, rw, ratio=0.2)


def _bowl(c, rng):
    rw = rng.uniform(0.9, 1.3)
    r = c.rows(lambda y: rw * np.sqrt(np.clip(1 - (y / 1.0) ** 2, 0, None)) * (y >= 0) * (y < 0.99))
    s = _surface(c, r)
    if rng.random() < 0.5:
        _opaque(c, s, rng.uniform(0.2, 0.95, 3), gloss=0.5)
    else:
        _liquid(c, s, rng, 0.3, 0.6)
        _glass(c, s)
    _rim(c, rw, ratio=0.12)


def _petri(c, rng):  # with a medium in it
    rw = rng.uniform(1.6, 2.2)
    r = c.rows(lambda y: _span(y, 0.0, 0.99, rw))
    s = _surface(c, r)
    _liquid(c, s, rng, 0.4, 0.6)
    _glass(c, s)
    _rim(c, rw, ratio=0.08)


def _vial(c, rng):
    r = c.rows(lambda y: np.maximum(_span(y, 0.25, 1.0, 0.2), _span(y, 0.18, 0.25, 0.13, 0.2)))
    s = _surface(c, r)
    _liquid(c, s, rng, 0.4, 0.85, p=0.8)
    _glass(c, s, absorb=rng.choice([(0.05, 0.025, 0.035), (0.2, 0.5, 1.2)]))
    cap = rng.choice([(0.95, 0.95, 0.95), (0.15, 0.15, 0.15), (0.9, 0.8, 0.1), (0.2, 0.6, 0.2)])
    _cap(c, 0.0, 0.19, 0.15, cap, ridges=40)


def _reagent_bottle(c, rng):  # brown glass, black cap
    r = c.rows(lambda y: np.maximum.reduce([_span(y, 0.13, 0.22, 0.1), _ellipse(y, 0.35, 0.13, 0.24) * (y < 0.35),
                                            _span(y, 0.35, 1.0, 0.24)]))
    s = _surface(c, r)
    _glass(c, s, absorb=(0.5, 1.2, 2.5))
    _cap(c, 0.0, 0.15, 0.12, (0.08, 0.08, 0.08), ridges=30)


def _funnel(c, rng):
    r = c.rows(lambda y: np.maximum(_span(y, 0, 0.45, 0.42, 0.05), _span(y, 0.45, 1.0, 0.04, 0.03)))
    s = _surface(c, r)
    _glass(c, s)
    _rim(c, 0.42, ratio=0.15)


def _wash_bottle(c, rng):
    color = rng.choice([(0.9, 0.9, 0.85), (0.85, 0.9, 0.95)])
    r = c.rows(lambda y: np.maximum.reduce([_span(y, 0.2, 0.3, 0.07, 0.2), _span(y, 0.3, 1.0, 0.22)]))
    s = _surface(c, r, shininess=20)
    _liquid(c, s, rng, 0.4, 0.7)
    _glass(c, s, absorb=(0.6, 0.6, 0.65))
    c.add(np.clip(0.5 - np.abs(c.x - 0.15 + 0.5 * c.y) * c.px / 3, 0, 1) * (c.y < 0.2) * (c.y > 0.0), 0.0,
          np.asarray(color) * 200)  # the spout tube
    _cap(c, 0.12, 0.22, 0.1, rng.choice([(0.9, 0.6, 0.1), (0.2, 0.6, 0.9), (0.9, 0.9, 0.9)]), ridges=20)


def _volumetric(c, rng):  # volumetric flask holding a coloured solution (never empty: flasks A-D are)
    r = c.rows(lambda y: np.maximum.reduce([_span(y, 0, 0.55, 0.045), _circle(y, 0.78, 0.22, flat=0.99)]))
    s = _surface(c, r)
    absorb, scatter = _LIQUIDS[rng.integers(len(_LIQUIDS))]
    _contents(c, s, rng.uniform(0.35, 0.5), absorb, scatter)
    _glass(c, s)
    _bands(c, s, (0.3,), 0.004, 0.3, 40)
    if rng.random() < 0.5:
        _cap(c, 0.0, 0.06, 0.05, rng.uniform(0.1, 0.9, 3), ridges=0)


_OTHER_KINDS = (_beaker, _erlenmeyer, _test_tube, _pipette, _cylinder, _can, _mug, _bowl, _petri, _vial,
                _reagent_bottle, _funnel, _wash_bottle, _volumetric)

_DESIGNS: dict[str, Callable[[_Canvas, int], None]] = {
    "A": _flask_a, "B": _flask_b, "C": _flask_c, "D": _flask_d, "E": _bottle_e,
    "F": lambda c, v: _gel_bottle(c, v, g=False), "G": lambda c, v: _gel_bottle(c, v, g=True),
    "J": _glass_j, "other": _other,
}


_WIDTHS = {"A": 0.31, "B": 0.32, "C": 0.24, "D": 0.36, "E": 0.2, "F": 0.19, "G": 0.19, "J": 0.32}
_OTHER_WIDTHS = {"_petri": 2.25, "_bowl": 1.33, "_mug": 0.66, "_beaker": 0.49, "_funnel": 0.44, "_erlenmeyer": 0.38,
                 "_can": 0.34, "_reagent_bottle": 0.26, "_wash_bottle": 0.26, "_volumetric": 0.24, "_vial": 0.22,
                 "_cylinder": 0.22, "_pipette": 0.11, "_test_tube": 0.09}


def _bounds(class_name: str, variant: int) -> tuple[float, float, float]:
    """(half width, top margin, bottom margin) of the canvas in object units: just room for the object."""
    if class_name == "other":
        return _OTHER_WIDTHS[_OTHER_KINDS[variant % len(_OTHER_KINDS)].__name__], 0.12, 0.02
    return _WIDTHS[class_name], 0.08, 0.02
