"""The classifier node's parameters, in one table.

The node declares its parameters from it, classifier.launch.py makes one launch argument of each, and a test
holds config/classifier.yaml and the README to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from glassware.edge_runtime.stream import LabelSmoother
from glassware.formats import names
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor


@dataclass(frozen=True)
class Param:
    name: str
    default: bool | int | float | str | None  # None: no default (only a value given counts); `kind` is the type
    description: str
    run_time: bool = False  # changeable while the node runs; otherwise read-only
    low: float | None = None  # inclusive range of a number
    high: float | None = None
    kind: type | None = None

    @property
    def type(self) -> type:
        return self.kind or type(self.default)

    def descriptor(self) -> ParameterDescriptor:
        descriptor = ParameterDescriptor(description=self.description, read_only=not self.run_time)
        if self.type is int and self.low is not None:
            descriptor.integer_range = [IntegerRange(from_value=int(self.low), to_value=int(self.high), step=1)]
        elif self.type is float and self.low is not None:
            descriptor.floating_point_range = [FloatingPointRange(from_value=self.low, to_value=self.high, step=0.0)]
        return descriptor


PARAMETERS = (
    Param("autostart", True, "configure and activate at start (false: wait for a lifecycle manager)"),
    Param("bundle", "", "model bundle directory made by `glassware export` (required). Set while running: the "
                        "new bundle loads in the background and takes over between two frames if it verifies, "
                        "its format passed the export gate, it answers the lab no worse "
                        "(swap_max_lab_drop) and no more not-glassware images as glassware; "
                        "else the running one stays (WARN)", True),
    Param("swap_max_lab_drop", 1.0, "a bundle set while running is refused if it answers the lab test set more "
                                    "than this many points worse (accuracy or share answered) than the one in "
                                    "use, both as measured at export on the same set", low=0.0, high=100.0),
    Param("format", "auto", f"bundle format ({', '.join(names())}); auto = the fastest passing int8 one, "
                            "timed at start-up"),
    Param("threads", 1, "inference threads", low=1, high=64),
    Param("providers", "", "ONNX formats: execution providers, comma-separated (e.g. tensorrt,cuda,cpu); "
                           "empty = CPU"),
    Param("compressed", False, "subscribe to sensor_msgs/CompressedImage (JPEG/PNG) instead of Image"),
    Param("smoothing", True, "smooth labels over recent frames: a class is answered when their average, or two "
          "frames in a row, meet its threshold"),
    Param("publish_debug_image", False, "publish ~/debug_image: the frame with its label drawn"),
    Param("collect_dir", "", "keep the frames answered unknown (and an audit share of the others) here, as JPEG + "
                             "JSON, to label with `glassware label`; empty = off"),
    Param("collect_max_rate_hz", 2.0, "collect at most this many frames per second of camera time; 0 = no limit",
          low=0.0, high=1000.0),
    Param("collect_max_mb", 500.0, "disk bound of collect_dir: the oldest kept frames go first", low=1.0, high=1e7),
    Param("collect_audit_share", 0.02, "share of answered frames collected too, for auditing", low=0.0, high=1.0),
    Param("threshold", None, "abstention threshold for every class: a lower calibrated confidence is answered "
                             "'unknown' (unset: the bundle's, one per class)", True, 0.0, 1.0, kind=float),
    Param("smoothing_alpha", LabelSmoother.ALPHA, "weight of the newest frame in the smoothed probabilities, "
                                                  "in (0, 1]; 1 = no memory", True, 0.0, 1.0),
    Param("smoothing_reset_gap_ms", 500.0, "forget the smoothed history when frame stamps jump back or are "
                                           "more than this apart (a paused camera); 0 = only when they jump back",
          True, 0.0, 3.6e6),
    Param("max_frame_age_ms", 500.0, "results of frames older than this (clock - header stamp) are not "
                                     "accepted, and frames without a stamp neither; 0 = no limit", True, 0.0, 3.6e6),
    Param("max_rate_hz", 0.0, "classify at most this many frames per second; 0 = every frame the model keeps "
                              "up with", True, 0.0, 1000.0),
    Param("mono16_bits", 0, "significant bits of mono16 frames (10, 12, 16); 0 = from each frame's largest value",
          True, 0, 16),
    Param("stall_timeout_ms", 500.0, "a frame waiting longer than this for its result makes the status ERROR",
          True, 1.0, 3.6e6),
)
