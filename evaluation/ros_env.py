"""The environment for processes started from the colcon-built ROS 2 workspace (ros2_ws/install).

Used by the demo's ROS replay and the ROS tests: the workspace sourced, a private ROS domain, and DDS kept on
127.0.0.1 by the package's large-image Fast DDS profile (raw 640x480 frames need its 32 MB shared-memory segment).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from glassware.errors import GlasswareError

WORKSPACE = Path(__file__).resolve().parents[1] / "ros2_ws"
INSTALL = WORKSPACE / "install"
PROFILE = INSTALL / "glassware_vision" / "share" / "glassware_vision" / "config" / "fastdds_large_images.xml"


def ros_environment(log_dir: Path, domain_id: int) -> dict[str, str]:
    """This process's environment with the workspace sourced, ROS domain `domain_id`, ROS logs in `log_dir`
    and loopback-only DDS."""
    setup = INSTALL / "setup.bash"
    if not setup.exists():
        raise GlasswareError(f"{setup} not found: build the ROS 2 workspace first (bash setup.sh)")
    sourced = subprocess.run(["bash", "-c", f"source {setup} && env -0"], capture_output=True, check=True).stdout
    env = dict(line.split("=", 1) for line in sourced.decode().split("\0") if "=" in line)
    env["AMENT_PREFIX_PATH"] = f"{env.get('AMENT_PREFIX_PATH', '')}:{sys.prefix}"  # the ROS wheels' own packages
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["ROS_LOG_DIR"] = str(log_dir)
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE)
    for name in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS", "ROS_LOCALHOST_ONLY"):
        env.pop(name, None)  # they would override the profile's loopback transports
    return env
