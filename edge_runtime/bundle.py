"""The model bundle: one self-describing directory per model, read by every consumer.

Layout:
    BUNDLE/manifest.json      schema "glassware-bundle/1" (below)
    BUNDLE/<model files>      e.g. vgg_int8.tflite, vgg_fp32.onnx
    BUNDLE/...                plots and reports (not hashed unless listed in `files`)

manifest.json:
    schema            "glassware-bundle/1"
    bundle_id         "<model>-<first 12 hex of the sha256 over all hashed files>"
    model             "lite0" | "vgg" | "mobilenet"
    class_names       [str, ...]      index = model output index
    preprocessing     glassware.preprocessing.Preprocessing.to_dict()
    output            "logits"        every format outputs logits (and "features", for the open-set score);
                                      calibrated probabilities are
                                      (1 - uniform_mix) * softmax(logits / temperature) + uniform_mix / K
    openset           (optional) the open-set score's file, method and threshold: glassware.edge_runtime.openset
    calibration       {"temperature": float, "uniform_mix": float, "threshold": float, "target_precision": float,
                       "class_thresholds": [float, ...] (one per class, optional), ...}
                                      a top probability below the threshold of its class is answered `unknown`;
                                      without class_thresholds, `threshold` is every class's
    formats           {name: {"file", "runtime", "precision", "input_dtype": "float32"|"uint8"|"int8", "metrics": {...},
                              "gate": "pass"|"fail"}}   name, runtime and precision as in glassware.formats
    files             {relative path: sha256 hex}  every model file; the manifest itself is not listed
    created, source_run, glassware_version
    manifest_sha256   sha256 of the canonical JSON of all other keys: an edited manifest is refused too

Loading verifies every hash, so a tampered or truncated model file is refused before it is used.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from glassware.checksum import sha256_file
from glassware.errors import BundleError
from glassware.preprocessing import Preprocessing

SCHEMA = "glassware-bundle/1"
MANIFEST = "manifest.json"


def bundle_id(model: str, files: dict[str, str]) -> str:
    h = hashlib.sha256("".join(f"{k}:{v}\n" for k, v in sorted(files.items())).encode())
    return f"{model}-{h.hexdigest()[:12]}"


def _manifest_digest(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def write_manifest(directory: str | Path, manifest: dict) -> dict:
    """Hash the files named in manifest["formats"] (and any already in manifest["files"]), set
    bundle_id, and write manifest.json. Returns the manifest as written."""
    directory = Path(directory)
    names = set(manifest.get("files", {})) | {f["file"] for f in manifest.get("formats", {}).values()}
    missing = [n for n in sorted(names) if not (directory / n).is_file()]
    if missing:
        raise BundleError(f"{directory}: files named in the manifest do not exist: {missing}")
    manifest = dict(manifest, schema=SCHEMA)
    manifest["files"] = {n: sha256_file(directory / n) for n in sorted(names)}
    manifest["bundle_id"] = bundle_id(manifest["model"], manifest["files"])
    manifest.pop("manifest_sha256", None)
    manifest["manifest_sha256"] = _manifest_digest(manifest)
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    tmp.replace(directory / MANIFEST)
    return manifest


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["class_names"])

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_dict(self.manifest["preprocessing"])

    @property
    def bundle_id(self) -> str:
        return self.manifest["bundle_id"]

    @property
    def temperature(self) -> float:
        return float(self.manifest.get("calibration", {}).get("temperature", 1.0))

    @property
    def uniform_mix(self) -> float:
        return float(self.manifest.get("calibration", {}).get("uniform_mix", 0.0))  # 0.0: bundles before it

    @property
    def threshold(self) -> float:
        """The single (global) abstention threshold: every class's in bundles without class_thresholds."""
        return float(self.manifest.get("calibration", {}).get("threshold", 0.0))

    @property
    def class_thresholds(self) -> list[float]:
        """One abstention threshold per class, in class_names order ([threshold] * K for older bundles)."""
        values = self.manifest.get("calibration", {}).get("class_thresholds")
        return [self.threshold] * len(self.class_names) if values is None else [float(v) for v in values]

    @property
    def formats(self) -> dict[str, dict]:
        return dict(self.manifest["formats"])

    def file(self, format_name: str) -> Path:
        if format_name not in self.manifest["formats"]:
            raise BundleError(f"{self.path}: no format {format_name!r}; has {sorted(self.manifest['formats'])}")
        return self.path / self.manifest["formats"][format_name]["file"]

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> "Bundle":
        """Read manifest.json; with verify, refuse the bundle if any listed file is missing or altered."""
        path = Path(path)
        mpath = path / MANIFEST
        if not mpath.is_file():
            raise BundleError(f"{path}: not a model bundle (no {MANIFEST}); create one with `glassware export`")
        try:
            manifest = json.loads(mpath.read_text())
        except (OSError, ValueError) as e:
            raise BundleError(f"{mpath}: unreadable manifest ({e})") from e
        if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
            raise BundleError(f"{mpath}: not a {SCHEMA} manifest")
        for key in ("model", "class_names", "preprocessing", "formats", "files", "bundle_id"):
            if key not in manifest:
                raise BundleError(f"{mpath}: manifest has no {key!r}")
        try:
            Preprocessing.from_dict(manifest["preprocessing"])
        except (TypeError, ValueError) as e:
            raise BundleError(f"{mpath}: bad preprocessing ({e})") from e
        thresholds = manifest.get("calibration", {}).get("class_thresholds")
        if thresholds is not None and not (
            isinstance(thresholds, list) and len(thresholds) == len(manifest["class_names"])
            and all(isinstance(t, (int, float)) and 0.0 <= t <= 1.0 for t in thresholds)
        ):
            raise BundleError(f"{mpath}: calibration.class_thresholds must be one number in [0, 1] per class")
        files = manifest["files"]
        for name, fmt in manifest["formats"].items():
            if fmt.get("file") not in files:
                raise BundleError(f"{mpath}: format {name!r} names a file with no sha256 in 'files'")
        if manifest.get("manifest_sha256") != _manifest_digest(manifest) or manifest["bundle_id"] != bundle_id(
            manifest["model"], files
        ):
            raise BundleError(f"{mpath}: manifest fails its integrity check (edited by hand?); re-export the bundle")
        if verify:
            for name, digest in files.items():
                f = path / name
                if not f.is_file():
                    raise BundleError(f"{path}: missing model file {name}")
                if sha256_file(f) != digest:
                    raise BundleError(f"{path}: {name} fails its sha256 check (tampered or truncated); re-export the bundle")
        return cls(path, manifest)
