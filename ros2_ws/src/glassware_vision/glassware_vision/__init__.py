"""glassware_vision: the ROS 2 face of glassware-vision (classifier node, replay publisher, healthcheck, benchmark)."""
