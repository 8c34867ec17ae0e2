"""The API reference (book/api/, "For contributors") documents advex's public names.

* every public module of advex declares ``__all__``, and every name in it exists;
* the reference's top-level table lists exactly ``advex.__all__``, each entry the object ``advex`` exports;
* the built pages carry a documented entry for every name in ``advex.__all__`` and in each subpackage's
  ``__all__`` (under the subpackage's name, e.g. ``advex.attacks.fgsm``).
"""
from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import advex

REPO = Path(__file__).resolve().parents[1]
API = REPO / "book" / "api"

# Modules allowed to lack ``__all__`` for a while (none now); ``test_modules_awaiting_all_still_lack_it`` fails
# as soon as one of them declares it, so that the entry is deleted and the module held to the rule.
AWAITING_ALL: set[str] = set()


def public_modules() -> list[str]:
    names = ["advex"]
    for info in pkgutil.walk_packages(advex.__path__, "advex."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def subpackages() -> list[str]:
    return [name for name in public_modules() if name != "advex" and hasattr(importlib.import_module(name), "__path__")]


def test_every_public_module_declares_all():
    missing = [name for name in public_modules()
               if not hasattr(importlib.import_module(name), "__all__") and name not in AWAITING_ALL]
    assert missing == [], f"public modules without __all__: {missing}"


def test_modules_awaiting_all_still_lack_it():
    declared = sorted(name for name in AWAITING_ALL if hasattr(importlib.import_module(name), "__all__"))
    assert declared == [], f"{declared} now declare __all__: delete them from AWAITING_ALL"


@pytest.mark.parametrize("name", public_modules())
def test_every_name_in_all_exists(name):
    module = importlib.import_module(name)
    absent = [item for item in getattr(module, "__all__", []) if not hasattr(module, item)]
    assert absent == [], f"{name}.__all__ names what it does not define: {absent}"


def test_top_level_table_lists_exactly_advex_all():
    text = (API / "index.md").read_text(encoding="utf-8")
    table = re.search(r"\.\. autosummary::\n(?:   :\S+:.*\n)*\n((?:   \S+\n)+)", text)
    assert table, "book/api/index.md has no autosummary table"
    entries = [line.strip().lstrip("~") for line in table.group(1).splitlines()]
    exported = {}
    for entry in entries:
        module, _, name = entry.rpartition(".")
        exported[name] = getattr(importlib.import_module(module), name)
    assert sorted(exported) == sorted(advex.__all__)
    assert [name for name, obj in exported.items() if obj is not getattr(advex, name)] == []


def test_every_subpackage_has_a_reference_section():
    text = "\n".join(page.read_text(encoding="utf-8") for page in API.glob("*.md"))
    documented = set(re.findall(r"\.\. automodule:: (\S+)\n   :members:", text))
    assert [name for name in subpackages() if name not in documented] == []


@pytest.mark.slow
def test_built_reference_documents_every_exported_name(built_book):
    html = "\n".join(page.read_text(encoding="utf-8") for page in (built_book / "book" / "api").glob("*.html"))
    ids = set(re.findall(r'<dt class="sig sig-object py" id="([^"]+)"', html))
    for package in subpackages():
        names = getattr(importlib.import_module(package), "__all__", [])
        absent = [name for name in names if f"{package}.{name}" not in ids]
        assert absent == [], f"the API reference does not document {package}: {absent}"
    linked = set(re.findall(r'href="[^"]*#(advex\.[^"]+)"', html))
    assert [name for name in advex.__all__ if not any(target.endswith("." + name) for target in linked & ids)] == []


def test_plain_text_docstrings_become_valid_rest():
    import sys

    sys.path.insert(0, str(REPO / "book" / "_ext"))
    try:
        from api_reference import plain_text_to_rest
    finally:
        sys.path.pop(0)
    lines = ["Shape (n, *image_shape); the norm |x| and ``|x|`` stay readable.",
             "indices:   int64 (out, fan_in), each row",
             "           distinct inputs.",
             "Weights are set: as usual."]
    assert plain_text_to_rest(lines) == [
        r"Shape (n, \*image_shape); the norm \|x\| and ``|x|`` stay readable.", "",
        "indices", "    int64 (out, fan_in), each row", "    distinct inputs.", "",
        "Weights are set: as usual."]
