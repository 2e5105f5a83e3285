"""glassware-vision: recognise scientific glassware from a robot gripper camera.

Sub-packages (each in its own top-level folder of the repository):
  glassware.synthetic     procedural glassware images and camera video (the embedded default data)
  glassware.training      dataset, models, training and evaluation (needs the `train` extra: TensorFlow)
  glassware.export        TFLite / ONNX export and accuracy gate
  glassware.calibration   int8 representative data, confidence scaling, abstention threshold, open-set fit
  glassware.edge_runtime  bundle loading and inference without TensorFlow or ROS
  glassware.evaluation    demo, benchmarks, replays scored against truth, report (reads all the others)
The core modules here (preprocessing, labels, formats, metrics, errors, CLI) need only NumPy and OpenCV.
"""

import os

__version__ = "0.1.0"

# TensorFlow turns its oneDNN kernels on by default only on some Intel CPUs; they train faster on AMD too
# (docs/results.md). Set before any sub-package imports TensorFlow; TF_ENABLE_ONEDNN_OPTS=0 still wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
# A JPEG of a few hundred bytes may declare 20000 x 20000 pixels: OpenCV would allocate gigabytes and decode
# for seconds. 50 megapixels is 6x a 4K frame. OpenCV reads this once, at its first decode.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(50_000_000))
