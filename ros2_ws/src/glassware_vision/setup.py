from glob import glob

from setuptools import find_packages, setup

package_name = "glassware_vision"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml", "README.md"]),
        (f"share/{package_name}/launch", glob("launch/*.launch.py")),
        (f"share/{package_name}/config", glob("config/*")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="glassware-vision developers",
    maintainer_email="glassware-vision@example.org",
    description="Glassware classifier node, replay publisher and launch files for ROS 2.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            f"classifier_node = {package_name}.classifier_node:main",
            f"replay_publisher = {package_name}.replay_publisher:main",
            f"healthcheck = {package_name}.healthcheck:main",
            f"recorder = {package_name}.recorder:main",
        ],
    },
)
