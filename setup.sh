#!/usr/bin/env bash
# Set up glassware-vision on a fresh machine: a venv in .venv with every extra, and the ROS 2 workspace.
#   bash setup.sh            workstation: train + edge + ros + dev extras, colcon-built ros2_ws
#   bash setup.sh --edge     robot/edge device: edge + ros extras only (no TensorFlow)
set -euo pipefail
cd "$(dirname "$0")"
extras="train,edge,ros,dev"
[[ "${1:-}" == "--edge" ]] && extras="edge,ros,dev"

python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[${extras}]"
if [[ -x ros2_ws/build.sh ]]; then
  bash ros2_ws/build.sh
fi
echo "setup.sh: ready (.venv with extras: ${extras})"
