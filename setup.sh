#!/usr/bin/env bash
# Set up glassware-vision on a fresh machine: a venv in .venv with every extra, and the ROS 2 workspace.
#   bash setup.sh            workstation: train + edge + ros + label + dev extras, colcon-built ros2_ws, and
#                            Debian's chromium + chromium-driver for the label page's browser test
#   bash setup.sh --edge     robot/edge device: edge + ros extras only (no TensorFlow)
set -euo pipefail
cd "$(dirname "$0")"
extras="train,edge,ros,label,dev"
[[ "${1:-}" == "--edge" ]] && extras="edge,ros,dev"

if [[ "${1:-}" != "--edge" ]] && ! { command -v chromium && command -v chromedriver; } >/dev/null; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    echo "setup.sh: installing chromium and chromium-driver (the label page's browser test)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "setup.sh: chromium or chromium-driver missing, the label page's browser test will be skipped;" \
         "install them with: sudo apt-get install chromium chromium-driver"
  fi
fi

python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[${extras}]"
if [[ -x ros2_ws/build.sh ]]; then
  bash ros2_ws/build.sh
fi
echo "setup.sh: ready (.venv with extras: ${extras})"
