"""Evaluation: the demo, benchmarks, replays scored against ground truth, and the report.

It reads every other layer (data, training, export, bundles, the edge runtime, the ROS node) and nothing
that runs on the robot imports it.
"""
