"""The model formats a bundle can hold: the one table that export, the CLI, the classifier and the docs read.

Imports nothing heavy (no TensorFlow, no runtime), so the robot's install reads it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from glassware import markdown

INT8_WEIGHT_PRECISIONS = ("int8", "dynamic")  # int8 weights: a quarter of fp32's size


@dataclass(frozen=True)
class Format:
    name: str
    runtime: str  # "tflite" (run by LiteRT) | "onnx" (run by ONNX Runtime), as written in the manifest
    precision: str  # "fp32" | "fp16" | "dynamic" (int8 weights, float arithmetic) | "int8"
    suffix: str
    cpu_rank: int  # 1 = tried first by `Classifier(format="auto")` on a CPU
    gpu_rank: int  # ... and with a GPU provider

    @property
    def int8_weights(self) -> bool:
        return self.precision in INT8_WEIGHT_PRECISIONS

    @property
    def needs_representative(self) -> bool:
        """Full int8 quantizes activations too, so the converter needs sample images to set their ranges."""
        return self.precision == "int8"

    def filename(self, model: str) -> str:
        return f"{model}_{self.precision}{self.suffix}"


# In export order. On a GPU, ONNX comes first as the only runtime that uses it, fp32 before int8 as TensorRT
# builds its own fp16 engine from it.
FORMATS = MappingProxyType({f.name: f for f in (
    Format("tflite_fp32", "tflite", "fp32", ".tflite", cpu_rank=3, gpu_rank=4),
    Format("tflite_fp16", "tflite", "fp16", ".tflite", cpu_rank=5, gpu_rank=5),
    Format("tflite_dynamic", "tflite", "dynamic", ".tflite", cpu_rank=6, gpu_rank=6),
    Format("tflite_int8", "tflite", "int8", ".tflite", cpu_rank=1, gpu_rank=3),
    Format("onnx_fp32", "onnx", "fp32", ".onnx", cpu_rank=4, gpu_rank=1),
    Format("onnx_int8", "onnx", "int8", ".onnx", cpu_rank=2, gpu_rank=2),
)})


def names() -> tuple[str, ...]:
    """Every format name, in export order."""
    return tuple(FORMATS)


def preference(on_gpu: bool) -> tuple[str, ...]:
    """Every format name, in the order `Classifier(format="auto")` tries them with a GPU provider or on a CPU."""
    return tuple(sorted(FORMATS, key=lambda n: FORMATS[n].gpu_rank if on_gpu else FORMATS[n].cpu_rank))


def markdown_table() -> str:
    """The table as docs/architecture.md shows it (a test keeps the two equal)."""
    headers = ["format", "runtime", "precision", "file", "int8 weights", "auto on CPU", "auto on GPU"]
    return markdown.table(headers, [
        [f"`{f.name}`", f.runtime, f.precision, f"`{f.filename('<model>')}`", "yes" if f.int8_weights else "no",
         f.cpu_rank, f.gpu_rank] for f in FORMATS.values()])
