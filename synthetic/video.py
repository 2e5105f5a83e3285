"""Synthetic gripper-camera video with frame-accurate ground truth, from the same renderer as the images.

The camera visits one object after another. Each visit is a segment: a short gap showing the empty scene,
the approach (the object enters from an edge and grows), a hold of several seconds (small hand jitter) and
the move away. Some segments are in the stress domain. Fast motion is motion-blurred. A frame is labelled
with the object's class only while the object is entirely in view; the gap and the frames where the object
is partly outside the picture are labelled "none".
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from glassware.errors import SynthesisError
from glassware.synthetic import CLASSES
from glassware.synthetic.images import check, sprite_px
from glassware.synthetic.objects import pick_level, pyramid, variants
from glassware.synthetic.scene import Placement, Scene, bounding_box, compose, draw_scene, rotated_size

NONE = "none"
PHASES = ("gap", "approach", "hold", "leave")
_DURATIONS = {"gap": (0.6, 1.0), "approach": (0.7, 1.0), "hold": (5.5, 7.5), "leave": (0.6, 0.9)}  # seconds
_STRESS_SHARE = 0.3
_PARALLAX = 0.3  # the background moves this much of the object's motion (it is farther away)
_EXPOSURE = 0.6  # of a frame interval: how long the shutter is open, for motion blur
_MARGIN = 0.15  # extra background around the frame (fraction of the width) so the camera can move


@dataclass
class Segment:
    class_name: str
    domain: str
    variant: int
    start: int  # first frame (of the gap)
    phases: dict[str, tuple[int, int]]  # phase -> [first, end) frames
    hold: Placement  # where the object rests during the hold, frame coordinates
    enter_from: tuple[float, float]  # unit direction the object comes from
    leave_to: tuple[float, float]
    leave_scale: float  # scale factor reached when it has left (camera passing close, or pulling back)
    enter_distance: float  # px from outside the frame to the hold position
    leave_distance: float


def write_video(out_mp4: str | Path, seconds: float = 60, fps: float = 30, seed: int = 0, width: int = 640,
                height: int = 480, stress_share: float | None = None) -> dict:
    """Write FILE.mp4 (mp4v), FILE.csv (frame,time_s,label,domain,phase) and FILE.json (summary).
    `stress_share`: the chance of each visit being in the stress domain (default about a third, with at least
    one stress visit among the first three)."""
    check(width=width, height=height, seed=seed)
    if stress_share is not None and not 0 <= stress_share <= 1:
        raise SynthesisError(f"stress share must be in [0, 1], got {stress_share!r}")
    if not (isinstance(seconds, (int, float)) and 0 < seconds <= 3600):
        raise SynthesisError(f"seconds must be in (0, 3600], got {seconds!r}")
    if not (isinstance(fps, (int, float)) and 1 <= fps <= 240):
        raise SynthesisError(f"fps must be in 1..240, got {fps!r}")
    out_mp4 = Path(out_mp4)
    if out_mp4.suffix.lower() != ".mp4":
        raise SynthesisError(f"{out_mp4}: the video file must end in .mp4")
    out_mp4.parent.mkdir(parents=True, exist_ok=True)
    n_frames = max(1, int(round(seconds * fps)))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    segments = _schedule(rng, n_frames, fps, width, height, stress_share)

    writer = cv2.VideoWriter(str(out_mp4), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
    if not writer.isOpened():
        raise SynthesisError(f"OpenCV cannot write an mp4v video to {out_mp4}")
    from tqdm import tqdm

    rows = []
    start = time.perf_counter()
    try:
        with tqdm(total=n_frames, desc="synth-video", unit="frame", file=sys.stderr) as bar:
            for seg, seg_end in zip(segments, [s.start for s in segments[1:]] + [n_frames]):
                for frame, label, phase in _film(seg, seg_end, rng, width, height):
                    writer.write(frame)
                    rows.append((len(rows), round(len(rows) / fps, 6), label, seg.domain, phase))
                    bar.update()
    finally:
        writer.release()
    elapsed = time.perf_counter() - start

    csv_path = out_mp4.with_suffix(".csv")
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("frame", "time_s", "label", "domain", "phase"))
        w.writerows(rows)
    labels = [r[2] for r in rows]
    summary = {
        "schema": "glassware-synth-video/1",
        "video": out_mp4.name,
        "ground_truth": csv_path.name,
        "seed": seed,
        "fps": fps,
        "seconds": n_frames / fps,
        "frames": n_frames,
        "width": width,
        "height": height,
        "label_counts": {name: labels.count(name) for name in CLASSES + [NONE] if name in labels},
        "stress_frames": sum(r[3] == "stress" for r in rows),
        "segments": [{"class": s.class_name, "domain": s.domain,
                      "phases": {p: list(span) for p, span in s.phases.items()}} for s in segments],
        "render_seconds": round(elapsed, 3),
        "frames_per_second": round(n_frames / elapsed, 1),
    }
    out_mp4.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _schedule(rng, n_frames, fps, width, height, stress_share: float | None = None) -> list[Segment]:
    """Segments until the video is full: every class in turn (shuffled), about a third in the stress domain."""
    share = _STRESS_SHARE if stress_share is None else stress_share
    segments: list[Segment] = []
    order: list[str] = []
    frame = 0
    while frame < n_frames:
        if not order:
            order = list(rng.permutation(CLASSES))
        name = str(order.pop())
        stress = rng.random() < share or (stress_share is None and len(segments) == 2
                                          and all(s.domain == "lab" for s in segments))
        phases, at = {}, frame
        for phase in PHASES:
            n = max(1, int(round(rng.uniform(*_DURATIONS[phase]) * fps)))
            phases[phase] = (at, at + n)
            at += n
        variant = int(rng.integers(variants(name)))
        extent = pyramid(name, variant, sprite_px(width, height))[0].extent
        hold = _hold_pose(rng, extent, width, height)
        enter, leave, leave_scale = _direction(rng), _direction(rng), float(rng.choice([0.6, 1.5]))
        half = np.array(rotated_size(extent, hold.angle)) * hold.scale / 2 * 1.25  # room for turning while moving
        segments.append(Segment(name, "stress" if stress else "lab", variant, frame, phases, hold, enter, leave,
                                leave_scale, _exit_distance(hold, enter, half, width, height),
                                _exit_distance(hold, leave, half * max(1.0, leave_scale), width, height)))
        frame = at
    return segments


def _hold_pose(rng, extent, width, height) -> Placement:
    """Where the gripper holds still in front of the object: near the centre, fairly close, mostly upright."""
    pose = rng.random()
    angle = (0.0 if pose < 0.6 else 180.0 if pose < 0.75 else float(rng.choice([90.0, -90.0]))) + rng.uniform(-12, 12)
    bw, bh = rotated_size(extent, angle)
    scale = min(0.94 * height / bh, 0.94 * width / bw) * rng.uniform(0.55, 0.8)
    half_w, half_h = bw * scale / 2, bh * scale / 2
    cx = float(np.clip(width / 2 + rng.uniform(-0.12, 0.12) * width, half_w + 8, width - half_w - 8))
    cy = float(np.clip(height / 2 + rng.uniform(-0.12, 0.12) * height, half_h + 8, height - half_h - 8))
    return Placement(cx, cy, scale, angle)


def _exit_distance(hold: Placement, direction, half, width, height) -> float:
    """How far the object must move from its hold position along `direction` to be just out of the picture."""
    dx, dy = direction
    reach = []
    if abs(dx) > 1e-6:
        reach.append(((width - hold.cx if dx > 0 else hold.cx) + half[0]) / abs(dx))
    if abs(dy) > 1e-6:
        reach.append(((height - hold.cy if dy > 0 else hold.cy) + half[1]) / abs(dy))
    return min(reach)


def _direction(rng) -> tuple[float, float]:
    a = rng.uniform(0, 2 * np.pi)
    return math.cos(a), math.sin(a)


def _film(seg: Segment, end: int, rng, width, height):
    """Yield (BGR frame, label, phase) for the frames of one segment up to `end`."""
    margin = int(round(_MARGIN * width))
    scene = draw_scene(seg.domain, rng, width + 2 * margin, height + 2 * margin, full_size=True)
    levels = pyramid(seg.class_name, seg.variant, sprite_px(width, height))
    jitter = rng.uniform(0, 2 * np.pi, 6)
    previous = None
    for f in range(seg.start, end):
        phase = next((p for p, (a, b) in seg.phases.items() if a <= f < b), "leave")
        if phase == "gap":
            yield compose(_window(scene, margin, margin, width, height), None, None, rng), NONE, phase
            continue
        where = _pose(seg, phase, f, jitter, width, height)
        # The camera moves, not the object: the background follows a fraction of the object's motion.
        ox = int(round(np.clip(margin - _PARALLAX * (where.cx - seg.hold.cx), 0, 2 * margin)))
        oy = int(round(np.clip(margin - _PARALLAX * (where.cy - seg.hold.cy), 0, 2 * margin)))
        motion = (0.0, 0.0)
        if previous is not None:
            vx, vy = where.cx - previous.cx, where.cy - previous.cy
            speed = math.hypot(vx, vy) + abs(where.scale - previous.scale) * 0.5  # growing edges move too
            if speed * _EXPOSURE >= 2:
                motion = (speed * _EXPOSURE * 640 / width, math.degrees(math.atan2(vy, vx)))
        previous = where
        frame = compose(_window(scene, ox, oy, width, height), levels, where, rng, motion)
        x0, y0, x1, y1 = bounding_box(pick_level(levels, where.scale), where)
        tol = 0.02 * max(x1 - x0, y1 - y0)
        inside = x0 >= -tol and y0 >= -tol and x1 <= width + tol and y1 <= height + tol
        yield frame, seg.class_name if inside else NONE, phase


def _window(scene: Scene, ox: int, oy: int, width: int, height: int) -> Scene:
    """The part of a (larger) scene the camera sees."""
    crop = (slice(oy, oy + height), slice(ox, ox + width))
    return replace(scene, size=(width, height), background=scene.background[crop],
                   light=None if scene.light is None else scene.light[crop])


def _pose(seg: Segment, phase: str, f: int, jitter, width, height) -> Placement:
    """The object's placement in frame coordinates at frame f."""
    hold = seg.hold
    if phase == "approach":
        a, b = seg.phases["approach"]
        p = 1 - (1 - (f - a) / (b - a)) ** 2  # fast at first, settling into the hold
        sx, sy = seg.enter_from
        away = seg.enter_distance
        return Placement(hold.cx + sx * away * (1 - p), hold.cy + sy * away * (1 - p),
                         hold.scale * (0.55 + 0.45 * p), hold.angle + 25 * (1 - p))
    t = f - seg.phases["hold"][0]
    shake = [math.sin(t * (0.11 + 0.05 * i) + jitter[i]) - math.sin(jitter[i]) for i in range(6)]  # 0 at first
    base = Placement(hold.cx + 0.012 * width * (shake[0] + 0.5 * shake[1]),
                     hold.cy + 0.012 * height * (shake[2] + 0.5 * shake[3]),
                     hold.scale * (1 + 0.02 * shake[4]), hold.angle + 1.5 * shake[5])
    if phase == "hold":
        return base
    a, b = seg.phases["leave"]
    p = ((f + 1 - a) / (b - a)) ** 2  # slow at first, then away: gone at the last frame
    lx, ly = seg.leave_to
    away = seg.leave_distance
    return Placement(base.cx + lx * away * p, base.cy + ly * away * p,
                     base.scale * (1 + (seg.leave_scale - 1) * p), base.angle - 20 * p)
