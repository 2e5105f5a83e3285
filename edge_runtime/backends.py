"""Inference backends behind one call: `open_backend(path, runtime).run(batch) -> logits`.

Models exported with an open-set score have a second output, "features" (what the logits layer reads);
`run_with_features(batch) -> (logits, features or None)` returns both. Outputs are found by name (the
TFLite signature's, the ONNX graph's), so their order in the file does not matter; a model with one output
(bundles made before the open-set score) gives that output as the logits.

TFLite files run on LiteRT (`ai_edge_litert`), else `tflite_runtime`, else `tensorflow.lite`; ONNX files on
ONNX Runtime with a provider list (TensorRT, CUDA, CPU) that falls back with a logged warning. Inputs are
model-size RGB pixels in 0..255 (uint8 or float32); quantized inputs and outputs are (de)quantized here,
so every backend returns float32 logits.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from glassware.errors import BundleError

log = logging.getLogger(__name__)

LOGITS, FEATURES = "logits", "features"  # output names of exported models
PROVIDER_ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


def parse_providers(text: str) -> list[str] | None:
    """'tensorrt, cuda,cpu' -> ['tensorrt', 'cuda', 'cpu'] (the command-line and ROS spelling); None when empty."""
    return [p.strip() for p in text.split(",") if p.strip()] or None


def execution_provider(name: str) -> str:
    """ONNX Runtime's name for a provider given as an alias ("cuda") or by its own name."""
    return PROVIDER_ALIASES.get(name.lower(), name)


def open_backend(model_path: str | Path, runtime: str, threads: int = 1, providers: list[str] | None = None):
    """Open a model file on its runtime. `providers` applies to ONNX only (default: CPU)."""
    model_path = Path(model_path)
    if not model_path.is_file():
        raise BundleError(f"model file not found: {model_path}")
    if runtime == "tflite":
        return TFLiteBackend(model_path, threads)
    if runtime == "onnx":
        return OnnxBackend(model_path, threads, providers)
    raise ValueError(f"unknown runtime {runtime!r} (tflite or onnx)")


def tflite_interpreter():
    """The first TFLite interpreter that imports: LiteRT, then tflite_runtime, then TensorFlow's."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite_runtime"
    except ImportError:
        pass
    try:
        import tensorflow as tf

        return tf.lite.Interpreter, "tensorflow.lite"
    except ImportError:
        raise BundleError("no TFLite interpreter: pip install ai-edge-litert (the `edge` extra)") from None


class TFLiteBackend:
    def __init__(self, path: Path, threads: int = 1):
        interpreter_class, self.name = tflite_interpreter()
        try:
            self._interp = interpreter_class(model_path=str(path), num_threads=threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise BundleError(f"{path}: not a loadable TFLite model ({e})") from e
        inp = self._interp.get_input_details()[0]
        outputs = {o["index"]: o for o in self._interp.get_output_details()}
        named = _tflite_output_names(self._interp)
        logits = named.get(LOGITS, next(iter(outputs)))
        self._out_index = logits
        self._features_index = named.get(FEATURES)
        self._in_index = inp["index"]
        self.input_dtype = np.dtype(inp["dtype"])
        self._in_quant = inp["quantization"] if self.input_dtype.kind in "iu" else None
        self._out_quant = {i: o["quantization"] if np.dtype(o["dtype"]).kind in "iu" else None for i, o in outputs.items()}
        self._batch = int(inp["shape"][0])
        self.has_features = self._features_index is not None

    def run(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch)
        if len(batch) != self._batch:
            self._interp.resize_tensor_input(self._in_index, [len(batch), *batch.shape[1:]])
            self._interp.allocate_tensors()
            self._batch = len(batch)
        self._interp.set_tensor(self._in_index, self._to_input(batch))
        self._interp.invoke()
        return self._output(self._out_index)

    def run_with_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        logits = self.run(batch)
        return logits, None if self._features_index is None else self._output(self._features_index)

    def _output(self, index: int) -> np.ndarray:
        y = self._interp.get_tensor(index)
        if self._out_quant[index] is not None:
            scale, zero = self._out_quant[index]
            return (y.astype(np.float32) - zero) * np.float32(scale)
        return y.astype(np.float32)  # a copy: the interpreter reuses its buffer on the next invoke

    def _to_input(self, batch: np.ndarray) -> np.ndarray:
        if self._in_quant is None:
            return batch.astype(np.float32, copy=False)
        scale, zero = self._in_quant
        if batch.dtype == self.input_dtype and scale == 1.0 and zero == 0:
            return batch  # raw uint8 pixels straight in: the int8 model's rescaling layer is in the graph
        info = np.iinfo(self.input_dtype)
        q = np.round(batch.astype(np.float32) / np.float32(scale)) + zero
        return np.clip(q, info.min, info.max).astype(self.input_dtype)


class OnnxBackend:
    def __init__(self, path: Path, threads: int = 1, providers: list[str] | None = None, trt_cache_dir: str | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise BundleError("no ONNX Runtime: pip install onnxruntime (the `edge` extra)") from None

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        wanted = [execution_provider(p) for p in (providers or ["CPUExecutionProvider"])]
        available = ort.get_available_providers()
        chosen = [p for p in wanted if p in available]
        if len(chosen) < len(wanted):
            log.warning("%s: providers %s not available here (have %s); falling back", path.name,
                        [p for p in wanted if p not in available], available)
        if "CPUExecutionProvider" not in chosen:
            chosen.append("CPUExecutionProvider")
        with_options = [(p, _provider_options(p, path, trt_cache_dir)) for p in chosen]
        try:
            self._session = ort.InferenceSession(str(path), options, providers=with_options)
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            if "CPUExecutionProvider" != chosen[0]:
                log.warning("%s: %s failed (%s); falling back to CPU", path.name, chosen[0], e)
                self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            else:
                raise BundleError(f"{path}: not a loadable ONNX model ({e})") from e
        inp = self._session.get_inputs()[0]
        self._in_name = inp.name
        names = [o.name for o in self._session.get_outputs()]
        self._out_name = LOGITS if LOGITS in names else names[0]
        self._outputs = [self._out_name] + ([FEATURES] if FEATURES in names else [])
        self.has_features = FEATURES in names
        self.input_dtype = np.dtype(np.uint8 if inp.type == "tensor(uint8)" else np.float32)
        self.name = f"onnxruntime:{self._session.get_providers()[0]}"

    def run(self, batch: np.ndarray) -> np.ndarray:
        x = np.asarray(batch).astype(self.input_dtype, copy=False)
        return self._session.run([self._out_name], {self._in_name: x})[0].astype(np.float32, copy=False)

    def run_with_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        x = np.asarray(batch).astype(self.input_dtype, copy=False)
        out = self._session.run(self._outputs, {self._in_name: x})
        return out[0].astype(np.float32, copy=False), out[1].astype(np.float32, copy=False) if len(out) > 1 else None


def _tflite_output_names(interpreter) -> dict[str, int]:
    """Output name -> tensor index from the model's first signature ({} if it has none)."""
    try:
        signatures = interpreter._get_full_signature_list()
    except AttributeError:  # interpreters without signature support: single-output models only
        return {}
    return dict(next(iter(signatures.values()))["outputs"]) if signatures else {}


def _provider_options(provider: str, model: Path, trt_cache_dir: str | None) -> dict:
    if provider != "TensorrtExecutionProvider":
        return {}
    # Engines are tied to the TensorRT version and the model that built them: key the cache folder by both,
    # so a new model or a JetPack upgrade builds a fresh engine instead of loading a stale one.
    base = Path(trt_cache_dir or os.environ.get("GLASSWARE_TRT_CACHE", Path.home() / ".cache" / "glassware" / "trt"))
    digest = hashlib.sha256(model.read_bytes()).hexdigest()[:16]
    folder = base / f"{model.stem}-{digest}" / f"trt-{_tensorrt_version()}"
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(folder),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(folder),
        "trt_fp16_enable": "True",
    }


def _tensorrt_version() -> str:
    try:
        import tensorrt

        return tensorrt.__version__
    except ImportError:
        return os.environ.get("TENSORRT_VERSION", "unknown")
