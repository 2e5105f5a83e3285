# Sourced by entrypoint.sh and healthcheck.sh: ROS 2, then the colcon-built workspace (the venv is first on
# PATH through the image's ENV). ROS's setup scripts read unset variables: do not source this under `set -u`.

source "/opt/ros/${ROS_DISTRO}/setup.bash"
source "${GLASSWARE_WS}/install/local_setup.bash"

# edge_runtime/backends.py keys the TensorRT engine cache by TensorRT version, from the `tensorrt` Python module
# or else from TENSORRT_VERSION. The image may lack the module, so give it the version of the installed libnvinfer
# (e.g. "10.3.0.30-1+cuda12.5"): a new TensorRT then never loads an engine built by the old one.
if [[ -z "${TENSORRT_VERSION:-}" ]]; then
  read -r TENSORRT_VERSION _ <<< "$(dpkg-query -W -f='${Version} ' 'libnvinfer[0-9]*' 2>/dev/null || true)"
  if [[ -n "${TENSORRT_VERSION}" ]]; then export TENSORRT_VERSION; else unset TENSORRT_VERSION; fi
fi
