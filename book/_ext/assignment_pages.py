"""Header buttons of the assignment pages: nothing that opens the repository, whose assignments/source/ holds
the solutions and the hidden tests.

sphinx-book-theme gives every notebook page the same buttons. On the pages built from
``assignments/release/`` (the student versions) this keeps only the buttons that open or download that one
notebook: Colab (which fetches the single file) and the download buttons. Binder and the JupyterHub link
(nbgitpuller) would start a server with the whole repository, and the repository buttons link to it.
"""
from __future__ import annotations

STUDENT_PAGES = "assignments/release/"
SINGLE_NOTEBOOK_LAUNCHERS = ("colab",)          # launchers that open the page's notebook and nothing else


def _opens_single_notebook(button: dict) -> bool:
    text = f"{button.get('text', '')} {button.get('url', '')}".lower()
    return any(name in text for name in SINGLE_NOTEBOOK_LAUNCHERS)


def keep_single_notebook_buttons(header_buttons: list[dict]) -> list[dict]:
    """The header buttons without the repository ones and without launchers that open the repository."""
    kept = []
    for button in header_buttons:
        label = button.get("label", "")
        if label.startswith("source-"):
            continue
        if label == "launch-buttons":
            launchers = [b for b in button.get("buttons", []) if _opens_single_notebook(b)]
            if not launchers:
                continue
            button = {**button, "buttons": launchers}
        kept.append(button)
    return kept


def _restrict(app, pagename, templatename, context, doctree):
    if pagename.startswith(STUDENT_PAGES) and "header_buttons" in context:
        context["header_buttons"] = keep_single_notebook_buttons(context["header_buttons"])


def setup(app):
    # after sphinx-book-theme has added its launch and source buttons (priority 501)
    app.connect("html-page-context", _restrict, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
