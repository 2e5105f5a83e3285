"""Swap the model while frames keep coming: a new bundle is loaded and checked in the background, then takes
over between two frames; if it fails, the one in use stays.

The classifying thread reads `current` once per frame, so a frame is decided by one model from start to end.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from glassware.edge_runtime.classifier import Classifier
from glassware.errors import GlasswareError

log = logging.getLogger(__name__)


class ModelSwap:
    """The classifier in use, and the replacement being loaded.

    `load(path)` makes a Classifier (verifying the bundle's hashes and opening its backend) and raises a
    GlasswareError (or ValueError) if it cannot; a replacement must also run a format that passed its export
    accuracy gate. `status`: {"state": "ok" | "loading" | "failed", "bundle_id", "bundle", "message"}.
    """

    def __init__(self, load: Callable[[Path], Classifier], path: str | Path):
        self._load = load
        self._current = load(Path(path))
        self._lock = threading.Lock()
        self._loader: threading.Thread | None = None
        self._status = self._ok("loaded")

    @property
    def current(self) -> Classifier:
        return self._current

    @property
    def status(self) -> dict:
        with self._lock:
            return dict(self._status)

    def request(self, path: str | Path) -> bool:
        """Start loading `path` in the background; False if a load is already under way (try again later)."""
        with self._lock:
            if self._loader is not None and self._loader.is_alive():
                return False
            self._status = {**self._status, "state": "loading", "message": f"loading {path}"}
            self._loader = threading.Thread(target=self._replace, args=(Path(path),), name="model-swap", daemon=True)
            self._loader.start()
        return True

    def wait(self, timeout: float | None = None) -> dict:
        """Wait for a load under way; return the status."""
        loader = self._loader
        if loader is not None:
            loader.join(timeout)
        return self.status

    def _replace(self, path: Path) -> None:
        try:
            candidate = self._load(path)
            gate = candidate.bundle.formats[candidate.format_name].get("gate")
            if gate != "pass":
                raise GlasswareError(f"format {candidate.format_name} did not pass the export accuracy gate")
        except (GlasswareError, ValueError, OSError) as e:
            with self._lock:
                self._status = {**self._ok(f"kept: {path} refused ({e})"), "state": "failed"}
            log.warning("model swap: %s refused (%s); still running %s", path, e, self._current.bundle.bundle_id)
            return
        previous = self._current.bundle.bundle_id
        with self._lock:
            self._current = candidate
            self._status = self._ok(f"swapped from {previous}")
        log.info("model swap: now running %s (%s), was %s", candidate.bundle.bundle_id, candidate.format_name,
                 previous)

    def _ok(self, message: str) -> dict:
        c = self._current
        return {"state": "ok", "bundle_id": c.bundle.bundle_id, "bundle": str(c.bundle.path), "message": message}
