"""Self-check of an edge install: Dockerfile.jetson runs it at build time, docker/check_edge_install.sh in CI.

    python docker/check_image.py --requirements docker/requirements-jetson.txt \
        [--providers TensorrtExecutionProvider,CUDAExecutionProvider] [--executables ROS_LIB_DIR]

Checks, none of which needs a GPU: TensorFlow/Keras are not importable; every `name==version` line of the
requirements file is installed at that version; exactly one OpenCV distribution, imported from this
environment; ONNX Runtime has the given execution providers compiled in; the edge runtime, LiteRT, rosbags and
the `glassware` CLI import; ROS executables (ament_python scripts) start with this environment's Python;
with --ros (ROS and the workspace sourced), the node's modules import, the package is in the ament index, and
messages with array fields survive the compiled type support, which uses NumPy's C API (a NumPy ABI mismatch
with the distribution's message libraries shows here). Prints one line per failure and exits 1 if any.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from importlib import metadata
from pathlib import Path

FORBIDDEN_MODULES = ("tensorflow", "tf_keras", "keras")
OPENCV_DISTRIBUTIONS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python",
                        "opencv-contrib-python-headless")
EDGE_MODULES = ("numpy", "cv2", "onnxruntime", "ai_edge_litert.interpreter", "rosbags.rosbag2",
                "glassware.edge_runtime.classifier", "glassware.evaluation.bench", "glassware.cli")
ROS_EXECUTABLES = ("classifier_node", "replay_publisher", "healthcheck")
ROS_MODULES = tuple(f"glassware_vision.{name}" for name in ROS_EXECUTABLES)


def pinned(requirements: Path) -> dict[str, str]:
    """name -> version of every `name==version` line (comments and blank lines ignored)."""
    pins = {}
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            if not sep:
                raise SystemExit(f"{requirements}: not pinned with ==: {line!r}")
            pins[name.strip()] = version.strip()
    return pins


def check_no_tensorflow() -> list[str]:
    return [f"{m} is importable: the edge install must not contain TensorFlow/Keras"
            for m in FORBIDDEN_MODULES if importlib.util.find_spec(m) is not None]


def check_pins(pins: dict[str, str]) -> list[str]:
    problems = []
    for name, version in pins.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name}=={version} is not installed")
            continue
        if installed != version:
            problems.append(f"{name} is {installed}, pinned {version}")
    return problems


def check_opencv() -> list[str]:
    found = []
    for name in OPENCV_DISTRIBUTIONS:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    problems = [] if len(found) == 1 else [f"expected one OpenCV distribution, found {found or 'none'}"]
    import cv2

    if not Path(cv2.__file__).resolve().is_relative_to(Path(sys.prefix).resolve()):
        problems.append(f"cv2 is imported from {cv2.__file__}, outside this environment ({sys.prefix})")
    return problems


def check_imports(modules: tuple[str, ...] = EDGE_MODULES) -> list[str]:
    problems = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:  # any failure to import is the finding
            problems.append(f"import {name} failed: {type(e).__name__}: {e}")
    return problems


def check_providers(required: list[str]) -> list[str]:
    import onnxruntime

    available = onnxruntime.get_available_providers()
    return [f"ONNX Runtime {onnxruntime.__version__} lacks {p} (has {available})" for p in required if p not in available]


def check_executables(directory: Path) -> list[str]:
    """Every ROS executable must start with a Python of this environment (same bin folder as this one)."""
    problems = [f"{directory}: no {name}" for name in ROS_EXECUTABLES if not (directory / name).is_file()]
    for script in sorted(p for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []:
        first = script.read_text(errors="replace").splitlines()[:1]
        interpreter = first[0][2:].strip().split()[0] if first and first[0].startswith("#!") else ""
        if Path(interpreter).parent != Path(sys.executable).parent:
            problems.append(f"{script} starts with {interpreter or 'no #! line'}, not this environment's Python")
    return problems


def check_ros() -> list[str]:
    problems = check_imports(ROS_MODULES)
    try:
        from ament_index_python.packages import get_package_prefix
        from glassware_vision_msgs.msg import Classification
        from rclpy.serialization import deserialize_message, serialize_message
        from sensor_msgs.msg import CameraInfo

        lib = Path(get_package_prefix("glassware_vision")) / "lib" / "glassware_vision"
        problems += [f"{lib}: no {name}" for name in ROS_EXECUTABLES if not (lib / name).is_file()]
        for msg in (CameraInfo(k=[float(i) for i in range(9)]), Classification(class_names=["a", "b"], scores=[0.25, 0.75])):
            if deserialize_message(serialize_message(msg), type(msg)) != msg:
                problems.append(f"{type(msg).__name__} changed in a serialization round trip")
    except Exception as e:  # any failure here is the finding
        problems.append(f"ROS check failed: {type(e).__name__}: {e}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirements", type=Path, required=True, help="pinned requirements file")
    parser.add_argument("--providers", default="CPUExecutionProvider", help="required ONNX Runtime providers")
    parser.add_argument("--executables", type=Path, help="lib/<package> folder of ROS executables to check")
    parser.add_argument("--ros", action="store_true", help="also check the ROS side (ROS and workspace sourced)")
    args = parser.parse_args(argv)

    pins = pinned(args.requirements)
    problems = check_no_tensorflow() + check_pins(pins) + check_imports()
    if not problems:  # the next checks import what check_imports proved importable
        problems += check_opencv() + check_providers([p for p in args.providers.split(",") if p])
    if args.executables:
        problems += check_executables(args.executables)
    if args.ros:
        problems += check_ros()
    for problem in problems:
        print(f"check_image: {problem}", file=sys.stderr)
    if problems:
        return 1
    import numpy
    import onnxruntime

    print(f"check_image: OK: {len(pins)} pins installed, numpy {numpy.__version__}, onnxruntime "
          f"{onnxruntime.__version__} {onnxruntime.get_available_providers()}, no TensorFlow, Python {sys.executable}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
