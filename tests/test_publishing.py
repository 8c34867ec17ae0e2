"""What publishing the book needs: launch buttons, Binder, the Pages workflow and the reader's table of contents."""
import os
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def load(path: str):
    return yaml.safe_load((REPO / path).read_text(encoding="utf-8"))


def pins(path: str) -> list[str]:
    """The requirement lines of a pip requirements file (no comments, blank lines or options such as an index)."""
    lines = (line.split("#", 1)[0].strip() for line in (REPO / path).read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def test_config_has_the_repository_and_the_launch_buttons():
    config = load("_config.yml")
    repository = config["repository"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", repository["url"])
    assert repository["branch"] == "main"
    buttons = config["launch_buttons"]
    assert buttons["binderhub_url"] == "https://mybinder.org"
    assert buttons["colab_url"] == "https://colab.research.google.com"
    assert "jupyterhub_url" in buttons, "the key an instructor fills in"
    assert buttons["notebook_interface"] == "jupyterlab"
    assert config["html"]["use_repository_button"] is True


def test_binder_post_build_installs_advex_and_fetches_the_assets():
    post_build = REPO / "binder" / "postBuild"
    assert os.access(post_build, os.X_OK), "repo2docker runs postBuild only when it is executable"
    text = post_build.read_text(encoding="utf-8")
    assert text.startswith("#!")
    assert re.search(r"pip install .*-e \.", text)
    assert "python -m advex.data.assets fetch" in text


def test_binder_pins_equal_the_top_level_requirements():
    assert pins("binder/requirements.txt") == pins("requirements.txt"), (
        "binder/requirements.txt must copy requirements.txt's pins (change a pin in both places)")
    assert (REPO / "binder" / "runtime.txt").read_text().strip() == "python-3.11"


def test_publish_workflow_builds_with_the_readme_command_and_deploys_pages():
    workflow = load(".github/workflows/publish.yml")
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert triggers["push"]["branches"] == ["main"] and "workflow_dispatch" in triggers
    assert workflow["permissions"]["pages"] == "write" and workflow["permissions"]["id-token"] == "write"
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    assert any("bash scripts/build_book.sh" in step.get("run", "") for step in steps)
    uses = {step.get("uses", "").split("@")[0]: step for step in steps}
    assert uses["actions/setup-python"]["with"]["python-version"] == "3.11"
    assert uses["actions/upload-pages-artifact"]["with"]["path"] == "_build/html"
    assert "actions/deploy-pages" in uses


def test_contributor_pages_are_a_part_of_their_own_placed_last():
    parts = load("_toc.yml")["parts"]
    files = {part["caption"]: [chapter["file"] for chapter in part["chapters"]] for part in parts}
    assert parts[-1]["caption"] == "For contributors"
    assert files["For contributors"] == ["book/benchmarks", "book/style_guide", "book/api/index"]
    assert "book/benchmarks" not in files["Appendices"] and "book/style_guide" not in files["Appendices"]
    assert files["Chapters"] == sorted(f"chapters/{nb.stem}" for nb in (REPO / "chapters").glob("*.ipynb"))
