"""Stress test: replay a video or rosbag2 through the classifier, over the real ROS graph.

    ros2 launch glassware_vision stress_test.launch.py bundle:=/path/to/bundle source:=/path/to/video.mp4 speed:=0

The replay publisher waits for the classifier, publishes the whole source (speed 0 = as fast as possible) and
then shuts the launch down; watch `ros2 topic echo /diagnostics` or ~/classification meanwhile. Raw frames go
through the large-image Fast DDS profile unless large_images:=false.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, IncludeLaunchDescription, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    image_topic = LaunchConfiguration("image_topic")
    replay = Node(
        package="glassware_vision",
        executable="replay_publisher",
        namespace=LaunchConfiguration("namespace"),
        parameters=[{
            "source": ParameterValue(LaunchConfiguration("source"), value_type=str),
            "speed": ParameterValue(LaunchConfiguration("speed"), value_type=float),
            "loop": ParameterValue(LaunchConfiguration("loop"), value_type=bool),
            "compressed": ParameterValue(LaunchConfiguration("compressed"), value_type=bool),
            "wait_for_subscribers": 1,
        }],
        remappings=[("image", image_topic)],
        output="screen",
        emulate_tty=True,
    )
    classifier = IncludeLaunchDescription(
        PathJoinSubstitution([FindPackageShare("glassware_vision"), "launch", "classifier.launch.py"]),
        launch_arguments={"image_topic": image_topic, "compressed": LaunchConfiguration("compressed"),
                          "large_images": LaunchConfiguration("large_images")}.items(),
    )
    return LaunchDescription([
        DeclareLaunchArgument("source", description="video file or rosbag2 to replay"),
        DeclareLaunchArgument("speed", default_value="1.0", description="1.0 = recorded rate, 0 = as fast as possible"),
        DeclareLaunchArgument("loop", default_value="false", description="replay again at the end"),
        DeclareLaunchArgument("compressed", default_value="false", description="replay as JPEG CompressedImage"),
        DeclareLaunchArgument("image_topic", default_value="/stress/image", description="camera topic"),
        DeclareLaunchArgument("large_images", default_value="true", description="large-image Fast DDS profile"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of both nodes"),
        classifier,
        replay,
        RegisterEventHandler(OnProcessExit(target_action=replay, on_exit=[EmitEvent(event=Shutdown(reason="replay finished"))])),
    ])
