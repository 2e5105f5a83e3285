#!/usr/bin/env bash
# HEALTHCHECK of Dockerfile.jetson: exit 0 (healthy) when the classifier node reports OK on /diagnostics within
# $GLASSWARE_HEALTH_TIMEOUT seconds (frames arriving and being classified), else 1 (Docker reserves other codes).
# Runs with the container's environment, so ROS_DOMAIN_ID and the Fast DDS profile match the node's.
set -o pipefail
source "$(dirname "${BASH_SOURCE[0]}")/ros_env.sh"
# A fresh ROS log folder per check, removed after: ~/.ros/log would gain a file every 30 s.
ROS_LOG_DIR="$(mktemp -d)" && export ROS_LOG_DIR
trap 'rm -rf "${ROS_LOG_DIR}"' EXIT
# GLASSWARE_NODE: the node's fully qualified name, when the entrypoint is given namespace:=...
"${GLASSWARE_WS}/install/glassware_vision/lib/glassware_vision/healthcheck" \
  --timeout "${GLASSWARE_HEALTH_TIMEOUT:-10}" --node "${GLASSWARE_NODE:-/glassware_classifier}" || exit 1
