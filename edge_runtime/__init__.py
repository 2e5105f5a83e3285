"""Inference on the robot: bundles, backends, stream handling and replay. Imports neither TensorFlow nor rclpy."""
