"""Dockerfile.jetson and the edge install path, checked here without Docker, network, ARM or GPU.

The image cannot be built on this machine, so its file is checked against the repository: what it copies
exists and is in the build context, what it starts exists in the ROS package, the Python packages it installs
agree with pyproject.toml's extras, no TensorFlow, pinned versions, a non-root user and a health check. The
edge install itself (a fresh venv from PyPI) runs in CI through docker/check_edge_install.sh.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile.jetson"
REQUIREMENTS = ROOT / "docker" / "requirements-jetson.txt"
ROS_PACKAGE = ROOT / "ros2_ws" / "src" / "glassware_vision"

# Where the image's pip evaluates pyproject's environment markers: JetPack 6 is Ubuntu 22.04 on aarch64.
IMAGE_ENV = {**default_environment(), "platform_machine": "aarch64", "python_version": "3.10",
             "python_full_version": "3.10.12", "sys_platform": "linux", "platform_system": "Linux"}
# onnxruntime-gpu is installed --no-deps from the Jetson index; its own dependencies are pinned from PyPI.
ORT_GPU_DEPENDENCIES = {"coloredlogs", "flatbuffers", "packaging", "protobuf", "sympy"}
# Pinned for Humble's build tools though no extra names it (see requirements-jetson.txt).
BUILD_TOOL_PINS = {"empy"}
# `ros` extra entries the image takes from the distribution's apt packages instead of pip.
ROS_FROM_APT = {"cmake"}
# `ros` extra wheels with no Humble apt package of the same name, and why nothing is missing.
NOT_IN_HUMBLE = {
    "ament-cmake-ros-core": "split out of ament_cmake_ros after Humble; Humble's ament_cmake has what we use",
    "rosidl-core-generators": "added in Iron; Humble's rosidl-default-generators is that set of generators",
}
FORBIDDEN = re.compile(r"tensorflow|tf[-_]keras|\bkeras\b|tf2onnx|\[[^\]]*\btrain\b[^\]]*\]", re.IGNORECASE)


# --- reading the files ---------------------------------------------------------------------------------------

def instructions() -> list[dict]:
    with open(DOCKERFILE, "rb") as f:
        return [s for s in DockerfileParser(fileobj=f).structure if s["instruction"] != "COMMENT"]


def variables() -> dict[str, str]:
    """ARG defaults and ENV values of the Dockerfile, as the parser resolves them."""
    with open(DOCKERFILE, "rb") as f:
        parser = DockerfileParser(fileobj=f)
        return {**parser.args, **parser.envs}


def expand(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m[1] or m[2], m[0]), text)


def run_text() -> str:
    return "\n".join(expand(s["value"], variables()) for s in instructions() if s["instruction"] == "RUN")


def copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY/ADD from the build context."""
    found = []
    for s in instructions():
        if s["instruction"] in ("COPY", "ADD"):
            words = [w for w in shlex.split(s["value"]) if not w.startswith("--")]
            assert not any(w.startswith("--from") for w in shlex.split(s["value"])), "multi-stage COPY: extend this test"
            found.append((words[:-1], expand(words[-1], variables())))
    return found


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def image_requirements(group: str) -> list[Requirement]:
    """Core dependencies ("core") or an extra of pyproject.toml, as pip in the image would see them."""
    project = pyproject()["project"]
    lines = project["dependencies"] if group == "core" else project["optional-dependencies"][group]
    return [r for r in map(Requirement, lines) if r.marker is None or r.marker.evaluate(IMAGE_ENV)]


def pins() -> dict[str, str]:
    pinned = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            specs = list(requirement.specifier)
            assert len(specs) == 1 and specs[0].operator == "==", f"{REQUIREMENTS.name}: pin {line!r} with =="
            pinned[canonicalize_name(requirement.name)] = specs[0].version
    return pinned


def dockerignore_excludes(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    parts = Path(path).parts
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if any(_match(pattern, prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def _match(pattern: str, path: str) -> bool:
    if pattern.startswith("**/"):
        rest = pattern[3:]
        return any(_match(rest, "/".join(path.split("/")[i:])) for i in range(len(path.split("/"))))
    return len(pattern.split("/")) == len(path.split("/")) and all(
        fnmatchcase(name, p) for name, p in zip(path.split("/"), pattern.split("/")))


def console_scripts() -> dict[str, str]:
    """name -> module of the ROS package's entry points (setup.py read as Python source, not run)."""
    tree = ast.parse((ROS_PACKAGE / "setup.py").read_text())
    scripts = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr | ast.Constant):
            text = "".join(str(v.value) if isinstance(v, ast.Constant) else "glassware_vision"
                           for v in (node.values if isinstance(node, ast.JoinedStr) else [node]))
            match = re.fullmatch(r"\s*(\w+)\s*=\s*([\w.]+):(\w+)\s*", text)
            if match:
                scripts[match[1]] = match[2]
    return scripts


# --- the Dockerfile against the repository -------------------------------------------------------------------

def test_base_image_is_pinned_to_a_jetpack_6_tag():
    with open(DOCKERFILE, "rb") as f:
        parents = DockerfileParser(fileobj=f).parent_images
    assert parents, "no FROM"
    for image in parents:
        name, _, tag = image.rpartition(":") if "@" not in image else (image, "", "digest")
        assert name and tag and tag != "latest" and "$" not in image, f"unpinned base image {image!r}"
    assert re.fullmatch(r"nvcr\.io/nvidia/l4t-jetpack:r36\.\d+\.\d+", parents[0])


def test_every_copy_source_exists_and_is_in_the_build_context():
    checked = 0
    for sources, _ in copies():
        for source in sources:
            matches = list(ROOT.glob(source))
            assert matches, f"COPY source {source!r} does not exist in the repository"
            assert not dockerignore_excludes(source.rstrip("/")), f"COPY source {source!r} is excluded by .dockerignore"
            checked += 1
    assert checked >= 10


def test_dockerignore_keeps_build_output_and_venv_out_of_the_context():
    for path in (".venv", ".git", "ros2_ws/build", "ros2_ws/install", "ros2_ws/log", "out/bundle/x.onnx",
                 "glassware/__pycache__/cli.cpython-311.pyc"):
        assert dockerignore_excludes(path), path
    assert not dockerignore_excludes("ros2_ws/src/glassware_vision/setup.py")


def test_the_image_installs_every_python_package_folder_of_pyproject():
    copied = {source.rstrip("/") for sources, _ in copies() for source in sources}
    folders = set(pyproject()["tool"]["setuptools"]["package-dir"].values())
    assert folders <= copied, f"package folders not copied (pip install would fail): {sorted(folders - copied)}"
    assert {"pyproject.toml", "README.md"} <= copied
    install = re.findall(r"pip install (--no-deps )?(\S+glassware-src\S*)", run_text())
    assert install and all(no_deps for no_deps, _ in install), "install the project with --no-deps: all pinned"


def test_pinned_requirements_agree_with_pyproject_edge_core_and_ros_tools():
    pinned = pins()
    expected = {}
    for group in ("core", "edge", "ros"):
        for requirement in image_requirements(group):
            name = canonicalize_name(requirement.name)
            if name == "onnxruntime" or name in ROS_FROM_APT or name.startswith("ros-kilted-"):
                continue  # checked by the tests below
            expected[name] = requirement
    missing = sorted(set(expected) - set(pinned))
    assert not missing, f"{REQUIREMENTS.name} lacks {missing} (pyproject.toml requires them)"
    for name, requirement in expected.items():
        assert requirement.specifier.contains(pinned[name], prereleases=True), \
            f"{name}=={pinned[name]} is outside pyproject's {requirement}"
    unexplained = set(pinned) - set(expected) - ORT_GPU_DEPENDENCIES - BUILD_TOOL_PINS
    assert not unexplained, f"{REQUIREMENTS.name} pins {sorted(unexplained)} that no extra asks for"
    assert int(pinned["numpy"].split(".")[0]) == 1, "ROS Humble's message libraries need NumPy 1.x"


def test_onnxruntime_gpu_comes_pinned_from_the_jetson_index_within_the_edge_range():
    runs = [line for line in run_text().splitlines() if "onnxruntime" in line]
    assert len(runs) == 1, runs
    words = shlex.split(runs[0])
    spec = next(w for w in words if w.startswith("onnxruntime"))
    name, version = spec.split("==")
    assert name == "onnxruntime-gpu" and "--no-deps" in words
    index = words[words.index("--index-url") + 1]
    assert re.fullmatch(r"https://pypi\.jetson-ai-lab\.io/jp6/cu12\d", index), index
    assert "--extra-index-url" not in words  # this package must not come from PyPI
    (edge_ort,) = [r for r in image_requirements("edge") if canonicalize_name(r.name) == "onnxruntime"]
    assert edge_ort.specifier.contains(version), f"onnxruntime-gpu {version} outside the edge extra's {edge_ort}"


def test_every_ros_wheel_of_the_ros_extra_has_its_apt_package_in_the_image():
    distro = variables()["ROS_DISTRO"]
    apt = set(re.findall(r"\b(ros-\w+(?:-[\w]+)*)", run_text()))
    for requirement in image_requirements("ros"):
        name = canonicalize_name(requirement.name)
        if name.startswith("ros-kilted-"):
            package = name.removeprefix("ros-kilted-")
            assert f"ros-{distro}-{package}" in apt or package in NOT_IN_HUMBLE, \
                f"{name}: install ros-{distro}-{package} in {DOCKERFILE.name} (or explain in NOT_IN_HUMBLE)"
        elif name in ROS_FROM_APT:
            assert re.search(rf"apt-get install[^\n]*(?<![-\w]){name}(?![-\w])", run_text()), f"{name}: not from apt"
    assert {f"ros-{distro}-ros2launch", f"ros-{distro}-launch-ros"} <= apt  # the entrypoint's `ros2 launch`


def test_no_tensorflow_is_installed_anywhere():
    in_image = [ROOT / s for sources, _ in copies() for s in sources if s.endswith(".sh")]
    texts = {p.name: p.read_text() for p in (DOCKERFILE, REQUIREMENTS, *in_image)}
    assert len(in_image) >= 3
    for name, text in texts.items():
        code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
        assert not FORBIDDEN.search(code), f"{name}: {FORBIDDEN.search(code)[0]!r}"
    train_only = ({canonicalize_name(r.name) for r in image_requirements("train")}
                  - {canonicalize_name(r.name) for g in ("core", "edge") for r in image_requirements(g)}
                  - ORT_GPU_DEPENDENCIES)  # sympy: onnxruntime needs it at run time too
    assert not train_only & set(pins()), f"train-only packages pinned for the image: {train_only & set(pins())}"
    assert not re.search(r"pip install[^\n]*\.\[", run_text()), "the image installs no extras of the project"


def test_versions_are_pinned_with_reasons():
    values = variables()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", values["ROS_SNAPSHOT"])
    assert re.fullmatch(r"[0-9A-F]{40}", values["ROS_SNAPSHOT_KEY"]), "check the full key fingerprint"
    assert "snapshots.ros.org/${ROS_DISTRO}/${ROS_SNAPSHOT}" in DOCKERFILE.read_text()
    assert re.search(r'pip install "pip==[\d.]+"', run_text())
    comments = [line for line in REQUIREMENTS.read_text().splitlines() if line.startswith("#")]
    assert len(comments) >= 10  # the file explains its pins


def test_runs_as_a_non_root_user_created_in_the_image():
    users = [s["value"].strip() for s in instructions() if s["instruction"] == "USER"]
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:"), users
    assert re.search(rf"useradd [^\n]*\b{users[-1]}\b", run_text())


def test_entrypoint_launches_the_package_launch_file_with_existing_executables():
    (entry,) = [json.loads(s["value"]) for s in instructions() if s["instruction"] == "ENTRYPOINT"]
    text = _code(_copied_script(entry[-1]))
    match = re.search(r"ros2 launch (\w+) ([\w.]+)", text)
    assert match and match[1] == "glassware_vision", "the entrypoint must run ros2 launch glassware_vision ..."
    launch = ROS_PACKAGE / "launch" / match[2]
    assert launch.is_file(), f"{launch} does not exist"
    assert re.search(r"glob\(\s*[\"']launch/\*\.launch\.py[\"']\s*\)", (ROS_PACKAGE / "setup.py").read_text())
    launch_text = launch.read_text()
    # the launch file declares its own arguments and one per row of the node's parameter table
    declared = launch_text + (ROS_PACKAGE / "glassware_vision" / "parameters.py").read_text()
    for argument in re.findall(r"(\w+):=", text):
        assert re.search(rf"[\"']{argument}[\"']", declared), f"{launch.name} declares no argument {argument!r}"
    scripts = console_scripts()
    for executable in re.findall(r"executable\s*=\s*[\"'](\w+)[\"']", launch_text):
        assert executable in scripts, f"{launch.name} starts {executable!r}, not an entry point of setup.py"
        assert (ROS_PACKAGE / (scripts[executable].replace(".", "/") + ".py")).is_file()


def test_healthcheck_runs_the_package_healthcheck_on_diagnostics():
    (health,) = [s["value"] for s in instructions() if s["instruction"] == "HEALTHCHECK"]
    assert "--start-period=" in health, "give the first start time to build the TensorRT engines"
    command = json.loads(health.split("CMD", 1)[1])
    text = _code(_copied_script(command[-1]))
    match = re.search(r"lib/glassware_vision/(\w+)\"?((?:\s+\\?\s*--[\w-]+\s+\S+)*)", text)
    assert match and match[1] == "healthcheck", "the health check must run the package's healthcheck executable"
    module = ROS_PACKAGE / (console_scripts()["healthcheck"].replace(".", "/") + ".py")
    source = module.read_text()
    assert "/diagnostics" in source
    for option in re.findall(r"(--[\w-]+)", match[2]):
        assert re.search(rf"add_argument\(\s*[\"']{option}[\"']", source), f"healthcheck has no {option} option"


def test_environment_files_named_by_env_exist_in_the_image():
    values = variables()
    home = values["GLASSWARE_HOME"]
    copied = {dest.rstrip("/") + "/" + Path(src).name if dest.endswith("/") else dest: src
              for sources, dest in copies() for src in sources}
    profile = values["FASTDDS_DEFAULT_PROFILES_FILE"]
    assert profile in copied, f"FASTDDS_DEFAULT_PROFILES_FILE={profile} is not copied into the image"
    root = ET.parse(ROOT / copied[profile]).getroot()
    namespace = {"dds": "http://www.eprosima.com"}
    assert root.find(".//dds:participant[@is_default_profile='true']", namespace) is not None
    assert values["GLASSWARE_WS"] == f"{home}/ros2_ws"


def _code(script: Path) -> str:
    """A shell script without its comment lines."""
    return "\n".join(line for line in script.read_text().splitlines() if not line.lstrip().startswith("#"))


def _copied_script(image_path: str) -> Path:
    """The repository file that COPY puts at image_path."""
    for sources, dest in copies():
        for source in sources:
            target = dest.rstrip("/") + "/" + Path(source).name if dest.endswith("/") else dest
            if target == image_path:
                return ROOT / source
    raise AssertionError(f"{image_path} is not copied into the image")


# --- the scripts ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("script", sorted((ROOT / "docker").glob("*.sh")), ids=lambda p: p.name)
def test_shell_scripts_parse(script):
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _entrypoint(tmp_path, **env) -> subprocess.CompletedProcess:
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GLASSWARE_PROVIDERS": "cpu", **env}
    return subprocess.run(["bash", str(ROOT / "docker" / "entrypoint.sh")], env=environment, capture_output=True,
                          text=True, timeout=30)


def test_entrypoint_refuses_to_start_without_a_bundle(tmp_path):
    done = _entrypoint(tmp_path, GLASSWARE_BUNDLE=str(tmp_path / "nothing"), GLASSWARE_TRT_CACHE=str(tmp_path / "c"))
    assert done.returncode == 2
    assert "no model bundle" in done.stderr and f":{tmp_path / 'nothing'}:ro" in done.stderr  # how to mount it


def test_entrypoint_refuses_an_unwritable_engine_cache(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{}")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    done = _entrypoint(tmp_path, GLASSWARE_BUNDLE=str(bundle), GLASSWARE_TRT_CACHE=str(blocker / "trt"))
    assert done.returncode == 2
    assert "not writable" in done.stderr and "glassware-trt" in done.stderr


def test_image_self_check_finds_wrong_pins_and_foreign_interpreters(tmp_path):
    from importlib import metadata

    sys.path.insert(0, str(ROOT / "docker"))
    try:
        import check_image
    finally:
        sys.path.pop(0)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"# a comment\npytest=={metadata.version('pytest')}\npackaging==0.0.1\n")
    assert check_image.check_pins(check_image.pinned(requirements)) == ["packaging is " +
                                                                       f"{metadata.version('packaging')}, pinned 0.0.1"]
    scripts = tmp_path / "lib"
    scripts.mkdir()
    for name in check_image.ROS_EXECUTABLES:
        (scripts / name).write_text(f"#!{Path(sys.executable).parent}/python3\n")
    assert check_image.check_executables(scripts) == []
    (scripts / "healthcheck").write_text("#!/usr/bin/python3\n")
    (problem,) = check_image.check_executables(scripts)
    assert "healthcheck starts with /usr/bin/python3" in problem


# --- the edge install path: the CLI without TensorFlow ---------------------------------------------------------

NO_TENSORFLOW = textwrap.dedent("""
    import contextlib, importlib.abc, io, json, sys
    BLOCKED = {"tensorflow", "keras", "tf_keras", "tf2onnx"}
    attempts = []

    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                attempts.append(name)
                raise ImportError(f"{name} is blocked: an edge install has no TensorFlow")

    sys.meta_path.insert(0, Blocker())
    import glassware.edge_runtime
    from glassware.edge_runtime import backends, bundle, classifier, stream
    from glassware.cli import main
    helps = {}
    for argv in ([], ["bench"], ["replay"]):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            main([*argv, "--help"])
        helps[" ".join(argv) or "glassware"] = out.getvalue()
    print(json.dumps({"helps": helps, "attempts": attempts}))
""")


def test_cli_and_edge_runtime_work_with_tensorflow_unimportable():
    done = subprocess.run([sys.executable, "-c", NO_TENSORFLOW], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["attempts"] == []  # building the whole CLI does not even try to import TensorFlow
    assert "bench" in result["helps"]["glassware"] and "replay" in result["helps"]["glassware"]
    assert "--providers" in result["helps"]["bench"] and "--bundle" in result["helps"]["bench"]
    assert "--bundle" in result["helps"]["replay"]
