"""gaialake: machine learning over the Gaia DR3 catalog on Spark + Delta (see README.md)."""
from pathlib import Path

import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


HERE = Path(__file__).parent


def _requirements() -> list[str]:
    lines = (HERE / "requirements.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def _packages(root: str, name: str) -> list[str]:
    return [name] + [f"{name}.{p}" for p in find_packages(root)]


PACKAGE_DIR = {"gaialake": "lib", "gaialake.models": "models", "gaialake.jobs": "jobs"}
PACKAGES = sorted({p for name, root in PACKAGE_DIR.items() for p in _packages(root, name)})

class BuildWithConf(build_py):
    """Ship conf/*.yaml inside the package (gaialake/conf/) so an installed wheel finds its
    defaults (gaialake.conf falls back to them when there is no repo checkout)."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "gaialake" / "conf"
        target.mkdir(parents=True, exist_ok=True)
        for yaml in (HERE / "conf").glob("*.yaml"):
            shutil.copy(yaml, target / yaml.name)


setup(
    name="gaialake",
    cmdclass={"build_py": BuildWithConf},
    version="0.1.0",
    description="Normalizing-flow science over the whole Gaia DR3 catalog on Spark and Delta",
    python_requires=">=3.11,<3.13",
    package_dir=PACKAGE_DIR,
    packages=PACKAGES,
    package_data={"gaialake": ["resources/*"]},
    install_requires=_requirements(),
    extras_require={"test": ["pytest==8.4.2", "nbclient==0.10.2", "nbformat==5.10.4", "ipykernel==6.30.1"]},
    entry_points={"console_scripts": ["gaialake=gaialake.cli:main"]},
)
