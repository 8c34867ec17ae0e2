"""advex installs on its own (``pip install .``): every subpackage is in the wheel, with its real dependencies."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    project = tmp_path_factory.mktemp("project")   # build from a copy: setuptools leaves build/ behind
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, project / name)
    shutil.copytree(REPO / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(out), str(project)], capture_output=True, text=True)
    if result.returncode != 0 and "No module named" in result.stderr and "setuptools" in result.stderr:
        pytest.skip("setuptools is not installed in this environment, so the wheel cannot be built offline")
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = out.glob("advex-*.whl")
    return path


def test_wheel_holds_every_module_of_the_source_tree(wheel):
    source = {p.relative_to(REPO / "src").as_posix() for p in (REPO / "src" / "advex").rglob("*.py")}
    with zipfile.ZipFile(wheel) as archive:
        packed = {name for name in archive.namelist() if name.endswith(".py")}
    assert source <= packed, f"missing from the wheel: {sorted(source - packed)}"


def test_wheel_declares_what_advex_imports(wheel):
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(archive.read(n).decode() for n in archive.namelist() if n.endswith("METADATA"))
    required = {line.split(":", 1)[1].strip().split(">")[0].split("=")[0].split("<")[0].strip().lower()
                for line in metadata.splitlines() if line.startswith("Requires-Dist:")}
    assert {"numpy", "torch", "scipy", "matplotlib", "ipywidgets", "tqdm", "pillow", "scikit-image"} <= required
    imported = set()
    for path in (REPO / "src" / "advex").rglob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] in ("import", "from") and not words[1].startswith("."):
                imported.add(words[1].split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"advex", "__future__"}
    distribution = {"PIL": "pillow", "skimage": "scikit-image", "matplotlib_inline": "matplotlib-inline",
                    "myst_nb": "myst-nb"}  # advex.glue, under the optional extra "book"
    assert {distribution.get(m, m).lower() for m in third_party} <= required, third_party
