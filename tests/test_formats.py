"""The format table: complete orders for "auto", light to import, shown as it is in the docs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from glassware.formats import FORMATS, markdown_table, names, preference

ROOT = Path(__file__).resolve().parents[1]


def test_each_preference_orders_every_format_once():
    assert sorted(f.cpu_rank for f in FORMATS.values()) == list(range(1, len(FORMATS) + 1))
    assert sorted(f.gpu_rank for f in FORMATS.values()) == list(range(1, len(FORMATS) + 1))
    assert sorted(preference(on_gpu=False)) == sorted(preference(on_gpu=True)) == sorted(names())


def test_a_gpu_provider_prefers_onnx_and_a_cpu_int8():
    assert FORMATS[preference(on_gpu=True)[0]].runtime == "onnx"
    assert FORMATS[preference(on_gpu=False)[0]].precision == "int8"


def test_the_table_imports_neither_tensorflow_nor_a_runtime():
    heavy = ("tensorflow", "keras", "onnxruntime", "ai_edge_litert", "tflite_runtime", "onnx", "cv2")
    code = f"import sys, glassware.formats; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_docs_show_the_table():
    assert markdown_table() in (ROOT / "docs" / "architecture.md").read_text()
