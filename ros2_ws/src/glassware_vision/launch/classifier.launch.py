"""Start the glassware classifier next to a camera driver.

    ros2 launch glassware_vision classifier.launch.py bundle:=/path/to/bundle image_topic:=/camera/image_raw

Every argument left empty takes its value from params_file (default: config/classifier.yaml).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable, UnsetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

SHARE = FindPackageShare("glassware_vision")

# name -> (type, description) of the node parameters a launch argument can override
OVERRIDES = {
    "bundle": (str, "model bundle directory made by `glassware export` (required)"),
    "format": (str, "bundle format: tflite_int8, tflite_fp32, onnx_int8, ... or auto"),
    "threads": (int, "inference threads"),
    "providers": (str, "ONNX formats: execution providers, comma-separated (tensorrt,cuda,cpu)"),
    "compressed": (bool, "true: image_topic carries sensor_msgs/CompressedImage"),
    "max_rate_hz": (float, "classify at most this many frames per second (0 = no limit)"),
    "threshold": (float, "abstention threshold 0..1 for every class (default: the bundle's, one per class)"),
    "smoothing": (bool, "smooth labels over recent frames"),
    "publish_debug_image": (bool, "publish ~/debug_image with the label drawn"),
}


def launch_arguments():
    return [
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="camera topic (with compressed:=true, its CompressedImage topic, "
                                          "e.g. /camera/image_raw/compressed)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the classifier node"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([SHARE, "config", "classifier.yaml"]),
                              description="node parameters (YAML)"),
        DeclareLaunchArgument("log_level", default_value="info", description="node log level"),
        DeclareLaunchArgument("large_images", default_value="false",
                              description="true: use config/fastdds_large_images.xml (raw 640x480 and larger "
                                          "frames, every process on this machine; see the package README)"),
        *[DeclareLaunchArgument(name, default_value="", description=f"{text} (empty: from params_file)")
          for name, (_, text) in OVERRIDES.items()],
    ]


def large_images_profile():
    """Fast DDS with a 32 MB shared-memory segment, UDP on loopback only, for every process started here."""
    enabled = IfCondition(LaunchConfiguration("large_images"))
    return [
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE",
                               PathJoinSubstitution([SHARE, "config", "fastdds_large_images.xml"]), condition=enabled),
        UnsetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", condition=enabled),  # it overrides the profile
    ]


def classifier_node(context):
    overrides = {name: ParameterValue(LaunchConfiguration(name), value_type=kind)
                 for name, (kind, _) in OVERRIDES.items() if LaunchConfiguration(name).perform(context) != ""}
    return [Node(
        package="glassware_vision",
        executable="classifier_node",
        name="glassware_classifier",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"), overrides],
        remappings=[("image", LaunchConfiguration("image_topic"))],
        ros_arguments=["--log-level", LaunchConfiguration("log_level")],
        output="screen",
        emulate_tty=True,
    )]


def generate_launch_description():
    return LaunchDescription([*launch_arguments(), *large_images_profile(), OpaqueFunction(function=classifier_node)])
