"""The classifier node's parameter table (glassware_vision/parameters.py) is the one source: the YAML, the launch
file and the README follow it."""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest
import yaml

from ros_harness import WORKSPACE

pytestmark = [pytest.mark.ros, pytest.mark.usefixtures("ros_env")]
PACKAGE = WORKSPACE / "src" / "glassware_vision"
LAUNCH_ONLY = {"image_topic", "namespace", "params_file", "log_level", "large_images", "use_sim_time", "use_respawn"}


def test_the_yaml_holds_every_parameter_with_its_default():
    from glassware_vision.parameters import PARAMETERS

    values = yaml.safe_load((PACKAGE / "config" / "classifier.yaml").read_text())["/**"]["ros__parameters"]
    defaults = {p.name: p.default for p in PARAMETERS if p.default is not None}
    assert values == defaults
    assert all(type(values[name]) is type(default) for name, default in defaults.items())  # 0.0, not 0


def test_the_readme_describes_every_parameter():
    from glassware_vision.parameters import PARAMETERS

    readme = (PACKAGE / "README.md").read_text()
    assert [p.name for p in PARAMETERS if f"| `{p.name}` |" not in readme] == []


def test_descriptors_carry_ranges_and_run_time_flags():
    from glassware_vision.parameters import PARAMETERS

    by_name = {p.name: p for p in PARAMETERS}
    assert by_name["format"].descriptor().read_only and not by_name["threshold"].descriptor().read_only
    assert not by_name["bundle"].descriptor().read_only  # set at run time: the model is swapped
    threshold = by_name["threshold"].descriptor().floating_point_range[0]
    assert (threshold.from_value, threshold.to_value) == (0.0, 1.0)
    assert by_name["threads"].descriptor().integer_range[0].to_value == 64


class _Recorded:
    """Stands in for every launch class: keeps its arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration(_Recorded):
    def perform(self, context):
        return context.get(self.args[0], "")


def _load_launch_file():
    """classifier.launch.py with the launch packages (no wheels exist) replaced by recorders."""
    fakes = {name: types.ModuleType(name) for name in (
        "launch", "launch.actions", "launch.conditions", "launch.substitutions", "launch_ros", "launch_ros.actions",
        "launch_ros.parameter_descriptions", "launch_ros.substitutions")}
    for module in fakes.values():
        module.__getattr__ = lambda name: type(name, (_Recorded,), {})
    fakes["launch.substitutions"].LaunchConfiguration = _LaunchConfiguration
    saved = {name: sys.modules.get(name) for name in fakes}
    sys.modules.update(fakes)
    try:
        spec = importlib.util.spec_from_file_location("classifier_launch", PACKAGE / "launch" / "classifier.launch.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name)
            else:
                sys.modules[name] = old


def test_the_launch_file_has_an_argument_per_parameter_and_passes_the_ones_given():
    from glassware_vision.parameters import PARAMETERS

    launch = _load_launch_file()
    arguments = {a.args[0]: a.kwargs for a in launch.launch_arguments()}
    assert set(arguments) == {p.name for p in PARAMETERS} | LAUNCH_ONLY
    assert all(arguments[p.name]["default_value"] == "" for p in PARAMETERS)  # empty: the YAML's value

    unset = {a.args[0] for a in launch.large_images_profile() if type(a).__name__ == "UnsetEnvironmentVariable"}
    assert unset == {"ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS", "ROS_LOCALHOST_ONLY"}  # as the profile needs

    [node] = launch.classifier_node({"bundle": "/b", "smoothing_alpha": "0.5", "threshold": "", "use_respawn": "true"})
    overrides = node.kwargs["parameters"][1]
    assert node.kwargs["respawn"] is True
    assert set(overrides) == {"bundle", "smoothing_alpha"}
    assert overrides["smoothing_alpha"].kwargs["value_type"] is float
    assert overrides["bundle"].kwargs["value_type"] is str
