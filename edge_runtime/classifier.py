"""One classifier over every bundle format: frame or encoded image in, calibrated `Prediction` out.

Preprocessing is `glassware.preprocessing` with the bundle's recorded spec, so the model sees exactly the
pixels training saw. A bundle with an open-set score (`glassware.edge_runtime.openset`) also refuses images
unlike anything trained on: their answer is `unknown` even when confident. The hot path allocates only the
model-size image and the scores, and never logs.
A Classifier is not thread-safe: give each thread its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glassware.edge_runtime.backends import execution_provider, open_backend
from glassware.edge_runtime.bundle import Bundle
from glassware.labels import UNKNOWN
from glassware.edge_runtime.openset import OpenSet
from glassware.errors import BundleError, FrameFormatError
from glassware.formats import INT8_WEIGHT_PRECISIONS, preference
from glassware.preprocessing import preprocess_bytes, preprocess_frame

log = logging.getLogger(__name__)

AUTO_TIMING_RUNS = 15  # timed inferences per candidate of format "auto" on a CPU
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


@dataclass(frozen=True, slots=True)
class Prediction:
    label: str  # class name, or "unknown" when not accepted
    class_index: int  # top class, also when the answer is unknown
    confidence: float  # calibrated probability of the top class
    accepted: bool  # confidence >= the threshold of the top class, and not refused by the open-set score
    scores: np.ndarray  # calibrated probabilities, one per class
    preprocess_ms: float
    inference_ms: float
    novelty: float = float("nan")  # open-set score (higher: less like the training images); NaN without one
    refused: bool = False  # the open-set score refused the top class: novel, and a class it may veto

    @property
    def evidence(self) -> np.ndarray:
        """What a temporal smoother should fold in: the scores, or no evidence (uniform) for a refused frame,
        so that a run of images unlike the training set fades the smoothed answer to `unknown`."""
        return np.full_like(self.scores, 1.0 / len(self.scores)) if self.refused else self.scores


class Classifier:
    """Load a bundle (hashes verified), pick a format and backend, classify frames."""

    def __init__(
        self,
        bundle: Bundle | str | Path,
        format: str = "auto",
        threads: int = 1,
        providers: list[str] | None = None,
        threshold: float | Sequence[float] | None = None,
    ):
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        self.format_name, self._backend = _open_format(self.bundle, format, threads, providers)
        self.backend_name: str = self._backend.name
        self.threads = threads
        self.class_names = self.bundle.class_names
        self._spec = self.bundle.preprocessing
        self._input_shape = (self._spec.height, self._spec.width, 3)
        self._inv_temperature = np.float32(1.0 / self.bundle.temperature)
        mix = self.bundle.uniform_mix
        self._keep, self._floor = np.float32(1.0 - mix), np.float32(mix / len(self.class_names))
        self._threshold = self.bundle.threshold
        if threshold is None or isinstance(threshold, Sequence | np.ndarray):
            self.thresholds = self.bundle.class_thresholds if threshold is None else threshold
        else:
            self.threshold = threshold
        self.openset = self._open_set()

    def _open_set(self) -> OpenSet | None:
        entry = self.bundle.manifest.get("openset")
        if entry is None:
            return None
        if not getattr(self._backend, "has_features", False):
            log.warning("%s: format %s has no features output; the open-set score is off", self.bundle.path,
                        self.format_name)
            return None
        return OpenSet.load(self.bundle.path, entry, self.class_names)

    @property
    def threshold(self) -> float:
        """One threshold as a single figure: the value set for every class, else the bundle's global one (the
        threshold in force for a class is `thresholds[class_index]`)."""
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        """Set every class's threshold to `value` (overriding the bundle's per-class thresholds)."""
        self.thresholds = np.full(len(self.class_names), value)
        self._threshold = float(value)

    @property
    def thresholds(self) -> np.ndarray:
        """The abstention threshold of each class (float32, read-only): a top probability below the threshold
        of its class is answered `unknown`. Defaults to the bundle's `class_thresholds`."""
        return self._thresholds

    @thresholds.setter
    def thresholds(self, values: Sequence[float] | np.ndarray) -> None:
        values = np.array(values, np.float32).reshape(-1)
        if values.shape != (len(self.class_names),) or not ((values >= 0.0) & (values <= 1.0)).all():
            raise ValueError(f"need one threshold in [0, 1] per class ({len(self.class_names)}), got {values}")
        values.flags.writeable = False
        self._thresholds = values

    def prepare(self, data: np.ndarray | bytes, encoding: str) -> np.ndarray:
        """Model input for `classify_input` from a raw frame (an array) with its encoding, or from encoded
        image bytes (encoding ignored). Thread-safe: a reader thread can preprocess while this classifier
        infers."""
        if isinstance(data, np.ndarray):
            return preprocess_frame(data, encoding, self._spec)
        return preprocess_bytes(data, self._spec)

    def classify_frame(self, frame: np.ndarray, encoding: str) -> Prediction:
        """A raw frame with its declared encoding (`glassware.preprocessing.ENCODINGS`, e.g. "bgr8")."""
        start = time.perf_counter()
        return self._predict(preprocess_frame(frame, encoding, self._spec), start)

    def classify_bytes(self, data: bytes | np.ndarray) -> Prediction:
        """Encoded JPEG/PNG/BMP/WebP bytes; ImageDecodeError if they are empty, truncated or corrupt."""
        start = time.perf_counter()
        return self._predict(preprocess_bytes(data, self._spec), start)

    def classify_input(self, x: np.ndarray, preprocess_ms: float = 0.0) -> Prediction:
        """An already preprocessed model input: uint8 RGB of the bundle's size (and what preparing it took)."""
        if x.dtype != np.uint8 or x.shape != self._input_shape:
            raise FrameFormatError(f"model input must be uint8 {self._input_shape}, got {x.dtype} {x.shape}")
        return self._predict(x, time.perf_counter() - preprocess_ms / 1e3)

    def _predict(self, x: np.ndarray, start: float) -> Prediction:
        ready = time.perf_counter()
        if self.openset is None:
            logits, features = self._backend.run(x[None])[0], None
        else:
            logits, features = self._backend.run_with_features(x[None])
            logits = logits[0]
        done = time.perf_counter()
        scores = logits * self._inv_temperature
        scores -= scores.max()
        np.exp(scores, out=scores)
        scores *= self._keep / scores.sum()
        scores += self._floor  # the calibration's uniform mix (glassware.calibration.temperature)
        top = int(scores.argmax())
        confidence = float(scores[top])
        accepted = bool(confidence >= self._thresholds[top])
        novelty, refused = float("nan"), False
        if features is not None:
            novelty = self.openset.score(features[0])
            refused = bool(novelty > self.openset.threshold and self.openset.vetoes[top])
            accepted = accepted and not refused
        return Prediction(
            self.class_names[top] if accepted else UNKNOWN,
            top,
            confidence,
            accepted,
            scores,
            (ready - start) * 1e3,
            (done - ready) * 1e3,
            novelty,
            refused,
        )


def _open_format(bundle: Bundle, name: str, threads: int, providers: list[str] | None):
    """Open the named format, or for "auto" the best passing format that opens here.

    "auto" on CPU times the passing formats with int8 weights (full int8 and dynamic-range; else all passing
    ones) here and keeps the fastest: which wins depends on the CPU (with VNNI int8 arithmetic; without it,
    dynamic-range's int8 weights with float arithmetic can be faster). A GPU provider takes the first that
    opens in the GPU order of `glassware.formats` (TensorRT builds its own engine, too slow to build just to
    time it).
    """
    formats = bundle.formats
    if name != "auto":
        if name not in formats:
            raise BundleError(f"{bundle.path}: no format {name!r}; has {sorted(formats)}")
        if formats[name].get("gate") != "pass":
            log.warning("%s: format %s did not pass the export accuracy gate", bundle.path, name)
        return name, open_backend(bundle.file(name), formats[name]["runtime"], threads, providers)
    on_gpu = any(execution_provider(p) in GPU_PROVIDERS for p in providers or ())
    order = preference(on_gpu)
    candidates = [n for n in order if n in formats and formats[n].get("gate") == "pass"]
    candidates += sorted(n for n in formats if n not in order and formats[n].get("gate") == "pass")
    if not candidates:
        raise BundleError(f"{bundle.path}: no format passed the export accuracy gate; name one with format=...")
    if not on_gpu:
        candidates = [n for n in candidates if formats[n].get("precision") in INT8_WEIGHT_PRECISIONS] or candidates
    opened, failures = {}, []
    for candidate in candidates:
        try:
            opened[candidate] = open_backend(bundle.file(candidate), formats[candidate]["runtime"], threads, providers)
        except BundleError as e:  # e.g. no TFLite interpreter on this device: try the next format
            log.warning("format %s unusable here (%s); trying the next", candidate, e)
            failures.append(f"{candidate}: {e}")
            continue
        if on_gpu:
            break
    if not opened:
        raise BundleError(f"{bundle.path}: no usable format: {'; '.join(failures)}")
    if len(opened) == 1:
        return next(iter(opened.items()))
    spec = bundle.preprocessing
    x = np.zeros((1, spec.height, spec.width, 3), np.uint8)
    ms = {n: _median_ms(backend, x) for n, backend in opened.items()}
    best = min(ms, key=ms.get)
    log.info("format auto: %s (%s ms per frame, %d threads, timed here)", best,
             ", ".join(f"{n} {v:.2f}" for n, v in sorted(ms.items(), key=lambda kv: kv[1])), threads)
    return best, opened[best]


def _median_ms(backend, x: np.ndarray) -> float:
    for _ in range(3):  # warm-up: first calls allocate and pack weights
        backend.run(x)
    times = []
    for _ in range(AUTO_TIMING_RUNS):
        start = time.perf_counter()
        backend.run(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def measure_overhead(classifier: Classifier, frames: list[np.ndarray], encoding: str = "bgr8", rounds: int = 5) -> dict:
    """Per-frame time of `classify_frame` vs a bare loop (resize + raw interpreter invoke) on the same frames.

    The two loops alternate round by round in one process, so machine load hits both alike; the figure
    that matters is `ratio` (classifier / bare), not the absolute times.
    """
    bare = _bare_runner(classifier)
    bare_ms, classifier_ms = [], []
    for _ in range(rounds):
        for frame in frames:
            start = time.perf_counter()
            bare(frame)
            bare_ms.append((time.perf_counter() - start) * 1e3)
        for frame in frames:
            start = time.perf_counter()
            classifier.classify_frame(frame, encoding)
            classifier_ms.append((time.perf_counter() - start) * 1e3)
    bare_p50, classifier_p50 = float(np.median(bare_ms)), float(np.median(classifier_ms))
    height, width = frames[0].shape[:2]
    return {
        "frames": len(frames),
        "rounds": rounds,
        "frame_size": f"{width}x{height}",
        "encoding": encoding,
        "format": classifier.format_name,
        "threads": classifier.threads,
        "bare_ms_p50": bare_p50,
        "classifier_ms_p50": classifier_p50,
        "ratio": classifier_p50 / bare_p50,
    }


def _bare_runner(classifier: Classifier):
    """The least a hand-written loop must do: resize (colour order ignored) and invoke the raw runtime."""
    from glassware.edge_runtime.backends import tflite_interpreter
    from glassware.preprocessing import resize

    spec = classifier.bundle.preprocessing
    path = str(classifier.bundle.file(classifier.format_name))
    if classifier.bundle.formats[classifier.format_name]["runtime"] == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = classifier.threads
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        dtype = np.uint8 if session.get_inputs()[0].type == "tensor(uint8)" else np.float32
        return lambda frame: session.run(None, {name: resize(frame, spec)[None].astype(dtype, copy=False)})

    interpreter_class, _ = tflite_interpreter()
    interpreter = interpreter_class(model_path=path, num_threads=classifier.threads)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def run(frame: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(inp["index"], resize(frame, spec)[None].astype(inp["dtype"], copy=False))
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])

    return run
