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

from glassware_vision.parameters import PARAMETERS

SHARE = FindPackageShare("glassware_vision")


def launch_arguments():
    return [
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="camera topic (with compressed:=true, its CompressedImage topic, "
                                          "e.g. /camera/image_raw/compressed)"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the classifier node"),
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([SHARE, "config", "classifier.yaml"]),
                              description="node parameters (YAML)"),
        DeclareLaunchArgument("log_level", default_value="info", description="node log level"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (a bag or simulator)"),
        DeclareLaunchArgument("use_respawn", default_value="false",
                              description="start the node again 2 s after it exits (a crash, a stalled model "
                                          "stopped by a supervisor)"),
        DeclareLaunchArgument("large_images", default_value="false",
                              description="true: use config/fastdds_large_images.xml (raw 640x480 and larger "
                                          "frames, every process on this machine; see the package README)"),
        *[DeclareLaunchArgument(p.name, default_value="", description=f"{p.description} (empty: from params_file)")
          for p in PARAMETERS],
    ]


def large_images_profile():
    """Fast DDS with a 32 MB shared-memory segment, UDP on loopback only, for every process started here."""
    enabled = IfCondition(LaunchConfiguration("large_images"))
    return [
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE",
                               PathJoinSubstitution([SHARE, "config", "fastdds_large_images.xml"]), condition=enabled),
        # each of these overrides the profile's transports (ROS_LOCALHOST_ONLY: before Jazzy, still honoured)
        *[UnsetEnvironmentVariable(name, condition=enabled)
          for name in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS", "ROS_LOCALHOST_ONLY")],
    ]


def classifier_node(context):
    overrides = {p.name: ParameterValue(LaunchConfiguration(p.name), value_type=p.type)
                 for p in PARAMETERS if LaunchConfiguration(p.name).perform(context) != ""}
    return [Node(
        package="glassware_vision",
        executable="classifier_node",
        name="glassware_classifier",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"), overrides,
                    {"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)}],
        respawn=LaunchConfiguration("use_respawn").perform(context).lower() == "true",
        respawn_delay=2.0,
        remappings=[("image", LaunchConfiguration("image_topic"))],
        ros_arguments=["--log-level", LaunchConfiguration("log_level")],
        output="screen",
        emulate_tty=True,
    )]


def generate_launch_description():
    return LaunchDescription([*launch_arguments(), *large_images_profile(), OpaqueFunction(function=classifier_node)])
