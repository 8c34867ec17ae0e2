"""Small Sphinx fixes that keep the static book clean when read offline.

* sphinx-thebe registers its inline config script once per ``env-before-read-docs``,
  and jupyter-book fires that event for two builders, so every page declared
  ``const THEBE_JS_URL`` twice: a console error on every page.  Drop duplicates.
"""
from __future__ import annotations


def _deduplicate_scripts(app, pagename, templatename, context, doctree):
    seen = set()
    unique = []
    for script in context.get("script_files", []):
        # inline scripts appear with filename None or '' depending on who added them
        key = (getattr(script, "filename", str(script)) or "", tuple(sorted(getattr(script, "attributes", {}).items())))
        if key in seen:
            continue
        seen.add(key)
        unique.append(script)
    if "script_files" in context:
        context["script_files"][:] = unique


def setup(app):
    app.connect("html-page-context", _deduplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
