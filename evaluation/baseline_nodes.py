"""The baselines `glassware bench-node` measures classifier_node against, each run as its own process:

    python -m glassware.evaluation.baseline_nodes naive --bundle BUNDLE [--ros-args ...]
    python -m glassware.evaluation.baseline_nodes echo [--ros-args ...]

naive: what a first attempt looks like (Keras `predict` per message in the callback, default QoS);
echo: answers every frame at once without a model (classifier_node's QoS), the floor DDS and rclpy set.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="baseline_nodes", description=__doc__.splitlines()[0])
    parser.add_argument("node", choices=("naive", "echo"))
    parser.add_argument("--bundle", type=Path, help="bundle with a .keras model (naive)")
    args, ros_args = parser.parse_known_args(argv)
    if args.node == "naive" and args.bundle is None:
        parser.error("naive needs --bundle")
    from glassware_vision.spin import run_node

    make = (lambda: _naive_node(args.bundle)) if args.node == "naive" else _echo_node
    return run_node(make, [sys.argv[0], *ros_args])


def _naive_node(bundle: Path):
    """The baseline: Keras `predict` per message in the callback, default QoS. Not for production."""
    import keras
    import rclpy
    from glassware.edge_runtime.bundle import Bundle
    from glassware.errors import BundleError
    from glassware.preprocessing import preprocess_frame
    from glassware_vision_msgs.msg import Classification
    from sensor_msgs.msg import Image

    from glassware_vision.messages import frame_of

    loaded = Bundle.load(bundle)
    keras_file = next((name for name in loaded.manifest["files"] if name.endswith(".keras")), None)
    if keras_file is None:
        raise BundleError(f"{bundle} has no .keras model for the naive baseline")
    model = keras.models.load_model(loaded.path / keras_file, compile=False)
    spec, class_names = loaded.preprocessing, loaded.class_names
    node = rclpy.create_node("naive_classifier")
    publisher = node.create_publisher(Classification, "~/classification", 10)

    def on_image(msg: Image) -> None:
        start = time.perf_counter()
        x = preprocess_frame(frame_of(msg), msg.encoding, spec)[None].astype(np.float32)
        scores = model.predict(x, verbose=0)[0]
        top = int(np.argmax(scores))
        publisher.publish(Classification(header=msg.header, label=class_names[top], raw_label=class_names[top],
                                         confidence=float(scores[top]), class_names=class_names,
                                         inference_ms=(time.perf_counter() - start) * 1e3, model_format="keras"))

    node.create_subscription(Image, "image", on_image, 10)
    return node


def _echo_node():
    """The floor: answers each frame at once with its header, no classification; classifier_node's QoS."""
    import rclpy
    from glassware_vision_msgs.msg import Classification
    from sensor_msgs.msg import Image

    from glassware_vision.qos import SENSOR_QOS

    node = rclpy.create_node("echo")
    publisher = node.create_publisher(Classification, "~/classification", 10)
    node.create_subscription(Image, "image", lambda msg: publisher.publish(
        Classification(header=msg.header, label="echo", model_format="echo")), SENSOR_QOS)
    return node


if __name__ == "__main__":
    sys.exit(main())
