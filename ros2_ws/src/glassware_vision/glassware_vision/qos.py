"""Camera subscription QoS, and the standard ROS 2 overrides that let an integrator change it per topic.

An override is a read-only parameter named after the subscribed (resolved, remapped) topic, e.g. in YAML:

    qos_overrides:
      /camera/image_raw:
        subscription:
          reliability: reliable   # best_effort | reliable | system_default
          durability: volatile    # volatile | transient_local | system_default
          depth: 5
"""

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSPolicyKind, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions

# REP-2003: sensor data is consumed best effort (which matches reliable publishers too); depth 1 because only the
# newest frame matters.
SENSOR_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)


def overridable() -> QoSOverridingOptions:
    return QoSOverridingOptions([QoSPolicyKind.RELIABILITY, QoSPolicyKind.DURABILITY, QoSPolicyKind.HISTORY,
                                 QoSPolicyKind.DEPTH])
