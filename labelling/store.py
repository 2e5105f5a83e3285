"""The labels given to collected frames: one state file in the collect folder, and class folders for `train`.

The state file (`DIR/labelling.json`, written atomically) is the record of every decision and of the
actions to undo; the class folders `OUT/<class>/<frame>.jpg` are then made to match it. So a crash between
the two is repaired at the next start, and rejected frames ("not glassware / bad frame") are recorded in the
state and never copied. Every change holds a lock (a thread lock and an flock on `DIR/.labelling.lock`) and
re-reads the state first, so two labellers, in two tabs or two servers, never lose each other's labels.
"""

from __future__ import annotations

import fcntl
import json
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from glassware.edge_runtime.collect import STEM, collected_frames, hamming, write_atomic
from glassware.errors import GlasswareError
from glassware.labels import BACKGROUND, UNKNOWN

log = logging.getLogger(__name__)

SCHEMA = "glassware-labelling/1"
STATE_FILE = "labelling.json"
LOCK_FILE = ".labelling.lock"
REJECTED = "rejected"  # not glassware, or a bad frame: recorded, never copied
KEPT_ACTIONS = 1000  # undo history kept in the state file
SIMILAR_BITS = 12  # dHash distance within which frames are shown as one look-alike group


class LabelError(GlasswareError):
    """A label request that cannot be carried out: an unknown class or frame, an unreadable folder."""


@dataclass(frozen=True)
class Frame:
    name: str  # the collector's stem
    image: Path
    meta: dict


class LabelStore:
    """The frames of a collect folder and their labels; `choices` are the bundle's classes, `background`
    and `rejected`."""

    def __init__(self, collected: str | Path, out: str | Path, class_names: list[str]):
        self.collected, self.out = Path(collected), Path(out)
        if not self.collected.is_dir():
            raise LabelError(f"{self.collected}: no such folder of collected frames")
        self.class_names = [*class_names, *([] if BACKGROUND in class_names else [BACKGROUND])]
        self.choices = [*self.class_names, REJECTED]
        self.frames: dict[str, Frame] = {}
        self.problems: list[dict] = []  # [{"path", "reason"}]: files that cannot be labelled
        self._unreadable: dict[str, str | None] = {}  # JPEG name -> why it cannot be labelled, None if fine
        self._logged: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self.refresh()
        with self._locked():
            self._sync(self._read_state()["labels"], set(self.frames))

    # --- reading ------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Pick up frames collected since the last look (each new JPEG is checked once) and forget deleted ones."""
        found, problems = collected_frames(self.collected)
        with self._lock:
            frames = {}
            for image, meta in found:
                if image.stem in self.frames:
                    frames[image.stem] = self.frames[image.stem]
                    continue
                if image.name not in self._unreadable:
                    self._unreadable[image.name] = _unreadable(image)
                if self._unreadable[image.name] is None:
                    frames[image.stem] = Frame(image.stem, image, meta)
                else:
                    problems.append({"path": image.name, "reason": self._unreadable[image.name]})
            for p in problems:
                if (p["path"], p["reason"]) not in self._logged:
                    self._logged.add((p["path"], p["reason"]))
                    log.warning("%s: skipped: %s", self.collected / p["path"], p["reason"])
            self.frames, self.problems = frames, sorted(problems, key=lambda p: p["path"])

    def snapshot(self) -> dict:
        """What the page shows: the choices, every frame with the model's guess, its label and its look-alike
        group, the problems, and the progress."""
        self.refresh()
        labels = self._read_state()["labels"]
        frames = sorted(self.frames.values(), key=lambda f: f.name)
        groups = _similar_groups([f.meta.get("dhash") for f in frames])
        rows = [{"name": f.name, "top_class": f.meta.get("top_class") or UNKNOWN,
                 "confidence": f.meta.get("confidence"), "raw_label": f.meta.get("raw_label"),
                 "kept": f.meta.get("kept"), "refused": bool(f.meta.get("refused")),
                 "label": labels.get(f.name), "similar": group}
                for f, group in zip(frames, groups)]
        done = [r["label"] for r in rows if r["label"] is not None]
        return {"choices": self.choices, "frames": rows,
                "problems": self.problems,
                "progress": {"frames": len(rows), "labelled": len(done), "rejected": done.count(REJECTED)},
                "collected": str(self.collected), "out": str(self.out)}

    def image(self, name: str) -> Path:
        """The JPEG of a frame in this folder (LabelError for any other name: nothing outside DIR is served)."""
        frame = self.frames.get(name)
        if frame is None:
            raise LabelError(f"no collected frame {name!r}")
        return frame.image

    # --- changing -----------------------------------------------------------------------------------------

    def assign(self, names: list[str], label: str, client: str = "") -> int:
        """Give `names` the label (a class, `background` or `rejected`); returns how many changed. An action
        the `client` can undo."""
        if label not in self.choices:
            raise LabelError(f"{label!r} is not a class of the bundle, {BACKGROUND!r} or {REJECTED!r}")
        unknown = [n for n in names if n not in self.frames]
        if unknown or not names:
            raise LabelError(f"no collected frame {unknown[0]!r}" if unknown else "no frames given")
        with self._locked():
            state = self._read_state()
            before = {n: state["labels"].get(n) for n in dict.fromkeys(names)}
            changed = {n: old for n, old in before.items() if old != label}
            if changed:
                state["labels"].update(dict.fromkeys(changed, label))
                state["actions"] = [*state["actions"], {"client": client, "label": label, "before": changed}]
                state["actions"] = state["actions"][-KEPT_ACTIONS:]
                self._write_state(state)
                self._sync(state["labels"], changed)
        return len(changed)

    def undo(self, client: str = "") -> list[str]:
        """Undo the client's latest action; returns the frames restored. A frame relabelled since (by anyone)
        keeps its newer label."""
        with self._locked():
            state = self._read_state()
            mine = [i for i, a in enumerate(state["actions"]) if a["client"] == client]
            if not mine:
                return []
            action = state["actions"].pop(mine[-1])
            restored = [n for n, old in action["before"].items() if state["labels"].get(n) == action["label"]]
            for name in restored:
                if (old := action["before"][name]) is None:
                    del state["labels"][name]
                else:
                    state["labels"][name] = old
            self._write_state(state)
            self._sync(state["labels"], restored)
        return restored

    # --- files --------------------------------------------------------------------------------------------

    @contextmanager
    def _locked(self):
        with self._lock, open(self.collected / LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _read_state(self) -> dict:
        path = self.collected / STATE_FILE
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            return {"schema": SCHEMA, "labels": {}, "actions": []}
        except (OSError, ValueError) as e:
            raise LabelError(f"{path}: unreadable ({e}); move it away to start labelling afresh") from e
        if not (isinstance(state, dict) and isinstance(state.get("labels"), dict)
                and isinstance(state.get("actions"), list)):
            raise LabelError(f"{path}: not a labelling state file; move it away to start labelling afresh")
        return state

    def _write_state(self, state: dict) -> None:
        write_atomic(self.collected / STATE_FILE, (json.dumps(state, indent=1) + "\n").encode())

    def _sync(self, labels: dict[str, str], names) -> None:
        """Make the class folders match the labels of `names`: a copy in its class's folder, none elsewhere."""
        for name in names:
            wanted = labels.get(name)
            for class_name in self.class_names:
                path = self.out / class_name / f"{name}.jpg"
                if class_name == wanted:
                    if not path.is_file() and name in self.frames:
                        path.parent.mkdir(parents=True, exist_ok=True)
                        write_atomic(path, self.frames[name].image.read_bytes())
                else:
                    path.unlink(missing_ok=True)


def _unreadable(image: Path) -> str | None:
    """Why a collected JPEG cannot be labelled (empty, truncated, corrupt), or None if it decodes."""
    try:
        data = image.read_bytes()
    except OSError as e:
        return f"cannot read ({e.strerror or e})"
    if not data.startswith(b"\xff\xd8") or b"\xff\xd9" not in data[-64:]:
        return "not a complete JPEG (truncated or corrupt)"
    if cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8) is None:
        return "not a decodable JPEG"
    return None


def _similar_groups(hashes: list[str | None]) -> list[int]:
    """A look-alike group number per frame: each frame joins the first group whose first frame is within
    SIMILAR_BITS of its dHash; frames without one share group -1."""
    heads: list[int] = []
    groups = []
    for text in hashes:
        try:
            value = int(text, 16)
        except (TypeError, ValueError):
            groups.append(-1)
            continue
        group = next((i for i, head in enumerate(heads) if hamming(value, head) <= SIMILAR_BITS), None)
        if group is None:
            heads.append(value)
            group = len(heads) - 1
        groups.append(group)
    return groups
