#!/usr/bin/env bash
# Entrypoint of Dockerfile.jetson.
#   no arguments, or launch arguments NAME:=VALUE   ros2 launch glassware_vision classifier.launch.py with the
#                                                   bundle at $GLASSWARE_BUNDLE and the providers $GLASSWARE_PROVIDERS
#   any other command (glassware bench ..., bash)    run it in the same environment
# No `set -e`: ROS's setup scripts may end on a false test; failures here are checked explicitly.
here="$(dirname "${BASH_SOURCE[0]}")"

die() {
  echo "glassware-vision: $*" >&2
  exit 2
}

check_bundle() {
  [[ -f "${GLASSWARE_BUNDLE}/manifest.json" ]] \
    || die "no model bundle at ${GLASSWARE_BUNDLE} (no manifest.json): mount one read-only," \
           "e.g. -v \$PWD/bundle:${GLASSWARE_BUNDLE}:ro"
}

check_engine_cache() {
  { mkdir -p "${GLASSWARE_TRT_CACHE}" 2>/dev/null && [[ -w "${GLASSWARE_TRT_CACHE}" ]]; } \
    || die "TensorRT engine cache ${GLASSWARE_TRT_CACHE} is not writable by uid $(id -u):" \
           "mount a named volume there (-v glassware-trt:${GLASSWARE_TRT_CACHE}) or chown the host folder to $(id -u)"
  mountpoint -q "${GLASSWARE_TRT_CACHE}" \
    || echo "glassware-vision: warning: ${GLASSWARE_TRT_CACHE} is not a mounted volume: TensorRT engines will be" \
            "rebuilt at every container start" >&2
}

if [[ $# -eq 0 || "$1" == *:=* ]]; then
  check_bundle
  check_engine_cache
  source "${here}/ros_env.sh"
  exec ros2 launch glassware_vision classifier.launch.py \
    bundle:="${GLASSWARE_BUNDLE}" providers:="${GLASSWARE_PROVIDERS}" "$@"
fi
source "${here}/ros_env.sh"
exec "$@"
