#!/usr/bin/env bash
# CI check of the edge install (the Python environment of Dockerfile.jetson) on x86, from PyPI only, and of the
# CPU deployment path of docs/deploy-cpu.md. No TensorFlow may arrive in either.
#   bash docker/check_edge_install.sh [BUNDLE]
# 1. image path: a fresh venv with docker/requirements-jetson.txt, the CPU onnxruntime of the same release as
#    the image's onnxruntime-gpu, and the project with --no-deps; then docker/check_image.py and
#    `glassware bench` on BUNDLE (LiteRT and ONNX Runtime rows).
# 2. CPU doc path: a fresh venv with `pip install ".[edge]"`; no TensorFlow; `glassware bench` again.
# BUNDLE defaults to a tiny one trained and exported with the project's full .venv (made by setup.sh).
# Takes 3-5 minutes on 2 busy cores; uses the package index pip is configured with (PyPI), nothing else.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bundle="${1:+$(realpath "$1")}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"  # not the checkout: its glassware/ folder would shadow the installed package
export TF_CPP_MIN_LOG_LEVEL=3 PIP_DISABLE_PIP_VERSION_CHECK=1
step() { echo "check_edge_install: $*" >&2; }

if [[ -z "$bundle" ]]; then
  step "making a tiny bundle with $root/.venv (1-epoch VGG on synthetic images)"
  "$root/.venv/bin/python" -c "from glassware.synthetic.images import write_dataset
write_dataset('$work/data', 'lab', per_class=6, seed=0, width=200, height=150)" > /dev/null
  "$root/.venv/bin/glassware" train --data "$work/data" --out "$work/run" --epochs 1 --batch-size 8 --no-augment \
    > "$work/train.log" 2>&1 || { cat "$work/train.log" >&2; exit 1; }
  "$root/.venv/bin/glassware" export --run "$work/run" --out "$work/bundle" --formats tflite_int8 onnx_fp32 \
    --keep-failed --representative 20 > "$work/export.log" 2>&1 || { cat "$work/export.log" >&2; exit 1; }
  bundle="$work/bundle"
fi

no_tensorflow() {  # $1: a venv
  if "$1/bin/python" -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) for m in ('tensorflow', 'keras', 'tf_keras')))"; then
    return 0
  fi
  step "FAIL: TensorFlow/Keras got installed into $1"
  "$1/bin/pip" list 2>/dev/null | grep -iE "tensorflow|keras" >&2 || true
  return 1
}

bench() {  # $1: a venv, $2: an output folder; every format of the bundle must give a row
  "$1/bin/glassware" bench --bundle "$bundle" --out "$2" --threads 1 --runs 20 --warmup 2 --no-keras > "$2.log" 2>&1 \
    || { cat "$2.log" >&2; return 1; }
  "$1/bin/python" - "$bundle" "$2/bench.json" <<'EOF'
import json, sys
from glassware.edge_runtime.bundle import Bundle
formats = set(Bundle.load(sys.argv[1]).formats)
rows = {row["format"] for row in json.load(open(sys.argv[2]))["rows"]}
assert formats <= rows, f"bench rows {sorted(rows)} lack {sorted(formats - rows)}"
print(f"check_edge_install: bench rows for {sorted(formats)}")
EOF
}

# Install from a copy of what the image copies (pyproject.toml, README.md, the package folders), as the image
# does: pip would otherwise write build/ into the checkout.
folders="$(python3 -c "import tomllib
print(' '.join(sorted(set(tomllib.load(open('$root/pyproject.toml', 'rb'))['tool']['setuptools']['package-dir'].values()))))")"
mkdir "$work/src"
# shellcheck disable=SC2086  # folders: a list of plain folder names
tar -C "$root" --exclude=__pycache__ -cf - pyproject.toml README.md $folders | tar -C "$work/src" -xf -
ort_version="$(grep -o 'onnxruntime-gpu==[0-9.]*' "$root/Dockerfile.jetson" | cut -d= -f3)"
step "1/2 image path: requirements-jetson.txt + onnxruntime==$ort_version (CPU build) + project --no-deps"
python3 -m venv "$work/image"
"$work/image/bin/pip" install -q -r "$root/docker/requirements-jetson.txt" "onnxruntime==$ort_version"
"$work/image/bin/pip" install -q --no-deps "$work/src"
no_tensorflow "$work/image"
"$work/image/bin/python" "$root/docker/check_image.py" --requirements "$root/docker/requirements-jetson.txt"
bench "$work/image" "$work/bench-image"

step "2/2 CPU doc path: pip install \".[edge]\""
python3 -m venv "$work/cpu"
"$work/cpu/bin/pip" install -q "$work/src[edge]"
no_tensorflow "$work/cpu"
bench "$work/cpu" "$work/bench-cpu"
step "OK"
