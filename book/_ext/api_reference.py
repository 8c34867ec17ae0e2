"""Read advex's docstrings as the plain text they are written in, for the API reference (book/api/).

The docstrings follow the style guide, not reStructuredText: ``|x|`` is an absolute value or a norm, and
arguments are listed as ``name:   description`` with continuation lines aligned under the description.
Parsed as reST, the first is a substitution and the second an unexpected indentation, both errors under
``-W``.  So, before autodoc parses a docstring, this extension

* escapes ``|`` outside inline literals, and a ``*`` that starts an unpacked name (``(n, *shape)``);
* drops the docstring a constant inherits from its type (``dict``'s, for a dict of colours);
* turns each ``name: description`` entry (two or more spaces after the colon, or aligned continuation
  lines) into a definition-list item, which renders the same table;

and it resolves a cross-reference that names an object by its short name (``:func:`get_device``` in a
module that imports it) when exactly one documented object has that name.
"""
from __future__ import annotations

import inspect
import re

ENTRY = re.compile(r"^(?P<indent>\s*)(?P<name>[A-Za-z_*][\w*]*(?:,\s*[A-Za-z_*][\w*]*)*):(?P<gap>\s+)(?P<text>\S.*)$")
LITERAL = re.compile(r"(``.+?``|`[^`]+`)")
UNPACKING_STAR = re.compile(r"(?<=[(\[,\s])\*(?=[A-Za-z_])(?![^*]*\*(?:\W|$))")


def _escape_bars(line: str) -> str:
    parts = LITERAL.split(line)
    return "".join(part if i % 2 else UNPACKING_STAR.sub(r"\*", part.replace("|", r"\|"))
                   for i, part in enumerate(parts))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def plain_text_to_rest(lines: list[str]) -> list[str]:
    """The docstring's lines with bars escaped and ``name: description`` entries as definition-list items."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = _escape_bars(lines[i])
        match = ENTRY.match(line)
        column = match and len(match["indent"]) + len(match["name"]) + 1 + len(match["gap"])
        follows = i + 1 < len(lines) and lines[i + 1].strip() and _indent(lines[i + 1]) == column
        if match and (len(match["gap"]) >= 2 or follows):
            indent = match["indent"]
            if out and out[-1].strip():
                out.append("")
            out.append(f"{indent}{match['name']}")
            out.append(f"{indent}    {match['text']}")
            i += 1
            while i < len(lines) and lines[i].strip() and _indent(lines[i]) == column:
                out.append(f"{indent}    {_escape_bars(lines[i]).strip()}")
                i += 1
            out.append("")
            continue
        out.append(line)
        i += 1
    return out


def _type_doc_openings(obj) -> set[str]:
    """First lines of the docstrings a value has only because of its type (``dict``'s, ``ndarray``'s)."""
    docs = (getattr(obj, "__doc__", None), getattr(type(obj), "__doc__", None))
    return {inspect.cleandoc(doc).splitlines()[0].strip() for doc in docs if isinstance(doc, str) and doc.strip()}


def _process_docstring(app, what, name, obj, options, lines):
    if what in ("data", "attribute") and lines and lines[0].strip() in _type_doc_openings(obj):
        lines[:] = []
        return
    lines[:] = plain_text_to_rest(lines)


def _resolve_short_name(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "").lstrip(".~")
    short = target.rsplit(".", 1)[-1]
    domain = env.get_domain("py")
    # (a class documented under its re-exported name also registers its canonical name, as an alias)
    matches = {full for full, entry in domain.objects.items()
               if (full == target or full.endswith("." + short)) and not entry.aliased}
    # of several, the one defined nearest the reference (advex.defences.predict, seen from
    # advex.defences.smoothing, rather than advex.evaluate.predict), else the one not re-exported at the top
    here = (node.get("py:module") or "").split(".")
    def nearness(full: str) -> tuple:
        parts = full.split(".")
        shared = next((i for i, (a, b) in enumerate(zip(parts, here)) if a != b), min(len(parts), len(here)))
        return (shared, full.count(".") >= 2)
    ranked = sorted(matches, key=nearness, reverse=True)
    if not ranked or (len(ranked) > 1 and nearness(ranked[0]) == nearness(ranked[1])):
        return None
    full = ranked[0]
    # a module whose only object of that name is a function (advex.attacks.apgd) links to the function
    reftype = node.get("reftype") if domain.objects[full].objtype != "function" else "func"
    return domain.resolve_xref(env, node.get("refdoc"), app.builder, reftype, full, node, contnode)


def setup(app):
    app.connect("autodoc-process-docstring", _process_docstring)
    app.connect("missing-reference", _resolve_short_name)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
