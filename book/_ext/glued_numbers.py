"""The static book's reading of the chapters' inline numbers, {eval}`glued("NAME:FORMAT")`.

The chapters cite every computed number as an inline expression (see ``advex.glue``), which
jupyterlab-myst renders in JupyterLab.  myst-nb evaluates ``{eval}`` only with a live kernel
(``execute_notebooks: inline``); the book executes through its cache instead, so this role reads the
expression as myst-nb's glue role: ``glued("NAME:FORMAT")`` pastes the output glued as NAME,
formatted by FORMAT, exactly as ``{glue:text}`NAME:FORMAT``` would (``{glue:md}`` for a value glued as
markdown).  Any other expression is an error: the static book has no kernel to evaluate it.
"""
from __future__ import annotations

from advex.glue import GLUED_CALL, split_reference
from myst_nb.core.variables import RetrievalError, create_warning
from myst_nb.ext.glue.roles import PasteMarkdownRole, PasteTextRole, retrieve_glue_data


class GluedRole(PasteTextRole):
    """``{eval}`glued("NAME:FORMAT")``` -> the glued value, as ``{glue:text}`` or ``{glue:md}``."""

    def run(self):
        match = GLUED_CALL.fullmatch(self.text.strip())
        try:  # anything but glued("NAME") or glued("NAME:FORMAT") lands here: an empty string is refused too
            name, fmt = split_reference(match.group(1) if match else "")
        except ValueError:
            message = (f"{{eval}} expression {self.text!r} is not supported in the static book: "
                       'only glued("NAME") or glued("NAME:FORMAT"), see advex.glue')
            return [], [create_warning(message, self.document, self.line, subtype="eval")]
        self.text = match.group(1)
        try:
            data = retrieve_glue_data(self.document, name).data
        except RetrievalError:
            data = {}  # PasteTextRole reports the missing name
        if "text/markdown" in data and not fmt:
            return PasteMarkdownRole.run(self)
        return PasteTextRole.run(self)


def _register(app, config):
    # after every extension's setup(), so that this reading replaces myst-nb's kernel-only {eval}
    app.add_role("eval", GluedRole(), override=True)


def setup(app):
    app.connect("config-inited", _register, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
