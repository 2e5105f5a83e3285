#!/usr/bin/env bash
# Build the ROS 2 workspace (glassware_vision_msgs, glassware_vision) with colcon, inside the project venv.
#   bash ros2_ws/build.sh          (setup.sh runs it; safe and quick to re-run)
#   then: source ros2_ws/install/setup.bash && export AMENT_PREFIX_PATH="$AMENT_PREFIX_PATH:$VIRTUAL_ENV"
# build/, install/ and log/ stay inside ros2_ws/ (gitignored).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [[ -z "${VIRTUAL_ENV:-}" ]]; then
  . "$here/../.venv/bin/activate"
fi

# The ROS 2 wheels' exported CMake targets name the wheel build host's Python and numpy include dirs
# (/opt/python/cp311-cp311/...); CMake refuses non-existent include paths, so point them at this venv's.
python - <<'EOF'
import glob, os, re, sysconfig
import numpy

py_include, np_include = sysconfig.get_paths()["include"], numpy.get_include()
numpy_dir = re.compile(r"/opt/python/cp3\d+-cp3\d+/lib/python3\.\d+/site-packages/numpy/(_core/)?include")
python_dir = re.compile(r"/opt/python/cp3\d+-cp3\d+/include/python3\.\d+")
for path in glob.glob(os.path.join(os.environ["VIRTUAL_ENV"], "share", "*", "cmake", "*Export.cmake")):
    with open(path) as f:
        text = f.read()
    fixed = python_dir.sub(py_include, numpy_dir.sub(np_include, text))
    if fixed != text:
        with open(path, "w") as f:
            f.write(fixed)
        print(f"build.sh: fixed wheel include paths in {os.path.relpath(path, os.environ['VIRTUAL_ENV'])}")
EOF

# The wheels install their ament index into the venv prefix; colcon and CMake find packages through it.
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"

cd "$here"
# Quick re-run: skip colcon when nothing under src/ changed since the last build with this interpreter.
stamp=install/.built_with
if [[ -f $stamp && "$(cat "$stamp")" == "$(command -v python)" && -z "$(find src build.sh -newer "$stamp" -print -quit)" ]]; then
  echo "build.sh: workspace up to date in $here/install"
  exit 0
fi
colcon --log-base log build \
  --base-paths src \
  --symlink-install \
  --event-handlers console_direct- status- \
  --cmake-args -DPython3_EXECUTABLE="$(command -v python)" -DBUILD_TESTING=OFF
command -v python > "$stamp"
echo "build.sh: workspace built in $here/install"
