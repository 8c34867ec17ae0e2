"""The package's layers: every import runs downwards (or within a layer), never up.

Layers, bottom to top: the plumbing and general tensor helpers; data, losses and the model cache; the training
loop; the models; the closed-form theory; the attacks; the evaluator; defences and the diagnostics built on them;
the proofs of robustness (advex.verify), which check certificates against the attacks.
A module importing one of a higher layer fails here, naming both.
"""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import advex
import advex.attacks
import advex.attacks.core
import advex.tensors

PACKAGE = Path(advex.__file__).parent

#: (layer, module-name prefixes), bottom first; a module's layer is that of its longest matching prefix
LAYERS = [
    ("plumbing", ("advex.validation", "advex.device", "advex.modes", "advex.paths", "advex.seeding",
                  "advex.progress", "advex.intervals", "advex.glue", "advex.viz", "advex.tensors")),
    ("data and objectives", ("advex.data", "advex.losses", "advex.cache")),
    ("training loop", ("advex.train",)),
    ("models", ("advex.models",)),
    ("theory", ("advex.theory",)),
    ("attacks", ("advex.attacks",)),
    ("evaluation", ("advex.evaluate",)),
    ("defences and diagnostics", ("advex.defences", "advex.sanity", "advex.smoothness")),
    ("proofs", ("advex.verify",)),
]


def layer_of(module: str) -> int:
    if module == "advex":
        return len(LAYERS)           # the package root re-exports from every layer
    matches = [(len(prefix), index) for index, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    if not matches:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return max(matches)[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(("advex",) + tuple(p for p in parts if p != "__init__"))


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(path: Path, source: str | None = None) -> set[str]:
    """advex modules imported by the file at ``path`` (imports under ``if TYPE_CHECKING:`` excluded)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    source = path.read_text(encoding="utf-8") if source is None else source

    def visit(node: ast.AST) -> None:
        if _type_checking_only(node):
            return
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("advex"):
                found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("advex"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_imports_run_downwards(path):
    name = module_name(path)
    upward = [(target, LAYERS[layer_of(target)][0]) for target in imports_of(path) if layer_of(target) > layer_of(name)]
    assert not upward, (f"{name} (layer '{LAYERS[layer_of(name)][0]}') imports from a higher layer: "
                        + ", ".join(f"{t} ('{layer}')" for t, layer in upward))


def test_the_layer_check_sees_an_upward_import_and_ignores_type_checking_ones():
    losses = PACKAGE / "losses.py"
    upward = imports_of(losses, "from .models.linear import LogisticRegression\n")
    assert upward == {"advex.models.linear"} and layer_of("advex.models.linear") > layer_of("advex.losses")
    guarded = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .models.linear import LogisticRegression\n"
    assert imports_of(losses, guarded) == set()


def test_losses_import_nothing_above_the_bottom_layers():
    for target in imports_of(PACKAGE / "losses.py"):
        assert layer_of(target) <= layer_of("advex.losses"), target


def test_the_tensor_helpers_live_in_one_bottom_module_and_are_reexported():
    for name in ("per_example", "l2_norms", "logit_margins", "attack_succeeded", "num_classes_of"):
        helper = getattr(advex.tensors, name)
        assert inspect.getmodule(helper) is advex.tensors
        assert getattr(advex.attacks.core, name) is helper
    assert advex.attacks.attack_succeeded is advex.tensors.attack_succeeded


def test_one_check_for_fractions_and_one_for_positive_numbers():
    sources = {path: path.read_text(encoding="utf-8") for path in MODULES}
    for path, source in sources.items():
        tree = ast.parse(source)
        defined = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert "check_positive_real" not in defined and "_check_positive" not in defined, path
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "_check_alpha":
                assert "check_fraction" in ast.unparse(node), f"{path}: _check_alpha must delegate to check_fraction"


def test_full_recipe_is_read_in_one_place(monkeypatch):
    readers = [path for path in MODULES if "ADVEX_FULL_RECIPE" in path.read_text(encoding="utf-8")]
    assert readers == [PACKAGE / "device.py"]
    from advex.device import full_recipe
    monkeypatch.setenv("ADVEX_FULL_RECIPE", "1")
    assert full_recipe() is True
    monkeypatch.setenv("ADVEX_FULL_RECIPE", "0")
    assert full_recipe() is False
    monkeypatch.setenv("ADVEX_FULL_RECIPE", "yes")
    with pytest.raises(ValueError, match="ADVEX_FULL_RECIPE"):
        full_recipe()
    monkeypatch.delenv("ADVEX_FULL_RECIPE")
    assert full_recipe() is (advex.get_device().type == "cuda")


OWN_MODULES = ["advex.attacks.core", "advex.attacks.gradient", "advex.attacks.apgd", "advex.attacks.square",
               "advex.attacks.estimation", "advex.attacks.decision", "advex.attacks.evolution",
               "advex.attacks.minimal", "advex.attacks.carlini_wagner", "advex.attacks.sparse",
               "advex.attacks.templates", "advex.attacks.transfer", "advex.attacks.queries", "advex.losses",
               "advex.validation", "advex.evaluate", "advex.sanity", "advex.device", "advex.smoothness",
               "advex.tensors", "advex.defences.training", "advex.defences.smoothing", "advex.defences.transforms",
               "advex.defences.augmentations"]


@pytest.mark.parametrize("name", OWN_MODULES)
def test_public_modules_declare_all(name):
    import importlib
    module = importlib.import_module(name)
    assert isinstance(getattr(module, "__all__", None), list), f"{name} declares no __all__"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"
