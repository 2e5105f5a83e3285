"""glassware-vision: recognise scientific glassware from a robot gripper camera.

Sub-packages (each in its own top-level folder of the repository):
  glassware.synthetic     procedural glassware images and camera video (the embedded default data)
  glassware.training      dataset, models, training and evaluation (needs the `train` extra: TensorFlow)
  glassware.export        TFLite / ONNX export, accuracy gate, latency benchmark
  glassware.calibration   int8 representative data, temperature scaling, abstention threshold
  glassware.edge_runtime  bundle loading and inference without TensorFlow or ROS
The core modules here (preprocessing, metrics, errors) need only NumPy and OpenCV.
"""

__version__ = "0.1.0"
