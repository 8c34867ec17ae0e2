"""The ε slider: one call shows how a perturbation of growing size changes a prediction.

``eps_slider(compute, eps_values)`` returns an object that Jupyter displays in
two forms at once:

* live (Jupyter Lab / Notebook / VS Code): an ipywidgets slider that calls
  ``compute(eps)`` again, on the current device, every time the reader drags;
* static (the published HTML book): ``compute`` is evaluated once per value of
  ``eps_values`` at execution time, the frames are embedded as JSON with PNG
  images, and a few lines of inline JavaScript switch between them.  No kernel,
  no network, no CDN.

Front-ends choose the richest form they can render: Jupyter picks the widget;
the book's ``_config.yml`` tells myst-nb to drop the widget form for HTML, so it
renders the static one.
"""
from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from ..validation import check_eps

__all__ = ["Frame", "SliderView", "eps_slider"]


@dataclass
class Frame:
    """What the slider shows at one ε.

    images:  title -> array.  (H, W) grey or (H, W, 3) RGB images in [0, 1];
             titles listed in ``signed`` are shown with a diverging colormap
             around 0; 1-D arrays are drawn as bar charts.
    numbers: label -> already formatted text (e.g. ``f"{p:.2f}"``).
    """

    images: Mapping[str, np.ndarray] = field(default_factory=dict)
    numbers: Mapping[str, str] = field(default_factory=dict)


def _as_array(value) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = np.moveaxis(array, 0, -1)  # CHW -> HWC
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    return array


def _diverging(values: np.ndarray, scale: float) -> np.ndarray:
    """Map signed values to RGB: blue (negative), white (0), red (positive)."""
    t = np.clip(values / (scale if scale > 0 else 1.0), -1.0, 1.0)
    red = np.where(t < 0, 1.0 + t, 1.0)
    blue = np.where(t > 0, 1.0 - t, 1.0)
    green = 1.0 - np.abs(t)
    return np.stack([red, green, blue], axis=-1)


def _png(rgb_or_grey: np.ndarray, display_px: int) -> bytes:
    data = np.clip(rgb_or_grey, 0.0, 1.0)
    image = Image.fromarray(np.round(data * 255).astype(np.uint8))
    scale = max(1, display_px // max(image.size))
    if scale > 1:  # keep pixels crisp: a digit's pixels are the point of the picture
        image = image.resize((image.size[0] * scale, image.size[1] * scale), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _bars_png(values: np.ndarray, ylim: tuple[float, float], title: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .style import PALETTE

    fig = Figure(figsize=(2.3, 1.7), dpi=80)
    ax = fig.add_subplot()
    colours = [PALETTE["positive"] if v >= 0 else PALETTE["negative"] for v in values]
    ax.bar(np.arange(len(values)), values, color=colours)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_ylim(*ylim)
    ax.set_xticks(np.arange(len(values)))
    ax.tick_params(labelsize=7)
    fig.tight_layout(pad=0.3)
    canvas = FigureCanvasAgg(fig)  # no pyplot: never touches the notebook's backend
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    # A 16-colour palette keeps each chart at a few kB: the static page embeds every frame.
    image = Image.fromarray(rgba[..., :3]).quantize(colors=16)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _tidy_number(text: str) -> str:
    """``text`` without the sign of a negative zero ("-0.00" → "0.00"): formatting a tiny negative number at
    a fixed precision prints a minus that means nothing to a reader."""
    return re.sub(r"[-\u2212](?=0(?:\.0+)?(?![\d.]))", "", str(text))


def _colour_key_html(scale: float) -> str:
    """The colour key of a signed panel: blue at −scale, white at 0, red at +scale (as :func:`_diverging`)."""
    text = f"{scale:.3g}"
    return ('<div class="advex-key" style="display:flex;align-items:center;justify-content:center;gap:0.3em;'
            f'font-size:0.75em"><span>\u2212{text}</span><span style="display:inline-block;width:5em;height:0.7em;'
            'border:1px solid #999;background:linear-gradient(to right,#0000ff,#ffffff,#ff0000)"></span>'
            f'<span>+{text}</span></div>')


def _tick_labels(texts: Sequence[str], most: int = 12) -> list[str]:
    """The labels under the static slider's track: every frame's value, or when there are more than ``most``
    frames, every k-th one (the others blank), the first and the last always shown.

    k divides the number of gaps when such a k leaves at least a third of ``most`` labels, so the labels are
    evenly spaced (16 frames: every third); otherwise (a prime number of gaps, say) k is the smallest step
    that fits, and the last gap, up to the final frame, is between half a step and a step and a half."""
    if len(texts) <= most:
        return list(texts)
    gaps = len(texts) - 1
    k = next(k for k in range(1, gaps + 1) if gaps % k == 0 and gaps // k + 1 <= most)
    if gaps // k + 1 >= most // 3:
        shown = set(range(0, gaps + 1, k))
    else:
        k = math.ceil(gaps / (most - 1))
        shown = set(range(0, gaps, k))
        if gaps - max(shown) < k / 2:         # too close to the last label
            shown.discard(max(shown))
        shown.add(gaps)
    return [t if i in shown else "" for i, t in enumerate(texts)]


class _Renderer:
    """Turns Frames into PNG bytes with scales fixed across all frames."""

    def __init__(self, signed: Sequence[str], signed_scale: float | None, display_px: int):
        self.signed = set(signed)
        self.signed_scale = signed_scale
        self.display_px = display_px
        self.bar_limits: dict[str, tuple[float, float]] = {}

    def fit(self, frames: Sequence[Frame]) -> None:
        signed_max = 0.0
        for frame in frames:
            for title, value in frame.images.items():
                array = _as_array(value)
                if array.ndim == 1:
                    low, high = self.bar_limits.get(title, (0.0, 0.0))
                    self.bar_limits[title] = (min(low, array.min()), max(high, array.max()))
                elif title in self.signed:
                    signed_max = max(signed_max, float(np.abs(array).max()))
        self.bar_limits = {t: (lo - 0.1 * (hi - lo) - 1e-9, hi + 0.1 * (hi - lo) + 1e-9) for t, (lo, hi) in self.bar_limits.items()}
        if self.signed_scale is None:
            self.signed_scale = signed_max

    def png(self, title: str, value) -> bytes:
        array = _as_array(value)
        if array.ndim == 1:
            return _bars_png(array, self.bar_limits.get(title, (array.min() - 1, array.max() + 1)), title)
        if title in self.signed:
            return _png(_diverging(array, self.signed_scale or 0.0), self.display_px)
        return _png(array, self.display_px)


def _check_frame(frame, eps: float) -> Frame:
    if not isinstance(frame, Frame):
        raise ValueError(f"compute({eps}) must return an advex.Frame, got {type(frame).__name__}")
    return frame


def _readout_decimals(eps_values: Sequence[float], eps_format: str) -> int:
    """Decimals of the ε readout: those of ``eps_format``, more where a grid value would print rounded.

    ``eps_format`` is a fixed-point format (``".2f"``).  A grid of steps 0.0125 at ``".3f"`` would show
    0.0125 as "0.013"; it gets 4 decimals instead, so the readout is always the value computed.
    """
    match = re.fullmatch(r"\.(\d+)f", eps_format)
    if match is None:
        raise ValueError(f"eps_format must be a fixed-point format such as '.2f', got {eps_format!r}")
    decimals = int(match.group(1))
    while decimals < 12 and any(abs(float(f"{e:.{decimals}f}") - e) > 1e-9 * max(1.0, abs(e)) for e in eps_values):
        decimals += 1
    return decimals


def _live_step_units(eps_values: Sequence[float], decimals: int) -> int:
    """The live slider's step, in units of the readout's last digit (10**-decimals).

    A whole number of units, so that every value the slider can reach prints exactly at ``decimals``;
    a divisor of every gap of the grid, so that every grid value is reachable; and, among those, the
    largest at most a quarter of the smallest gap (a few live positions between two frames).
    """
    units = [round(e * 10**decimals) for e in eps_values]
    gaps = [b - a for a, b in zip(units, units[1:])]
    if not gaps:
        return 1
    common = math.gcd(*gaps)
    k = max(1, math.ceil(4 * common / min(gaps)))
    while common % k and k < 10_000:
        k += 1
    return common // k if common % k == 0 else 1


_SCRIPT = """
(function () {
  var root = document.getElementById(%(id)s);
  if (!root || root.dataset.ready) { return; }
  root.dataset.ready = "1";
  var data = JSON.parse(root.querySelector("script.advex-frames").textContent);
  var input = root.querySelector("input.advex-range");
  var epsText = root.querySelector("output.advex-eps");
  function show(i) {
    var frame = data.frames[i];
    epsText.textContent = data.eps_text[i];
    root.querySelectorAll("img[data-panel]").forEach(function (img) {
      img.src = "data:image/png;base64," + frame.images[+img.dataset.panel];
    });
    root.querySelectorAll("[data-number]").forEach(function (cell) {
      cell.textContent = frame.numbers[+cell.dataset.number];
    });
  }
  input.addEventListener("input", function () { show(+input.value); });
  show(+input.value);
})();
"""


class SliderView:
    """Displayable result of :func:`eps_slider` (see the module docstring)."""

    def __init__(self, compute, eps_values, label, title, signed, signed_scale, display_px, live, eps_format):
        self.compute = compute
        self.eps_values = list(eps_values)
        self.label = label
        self.title = title
        self.eps_format = eps_format
        self.decimals = _readout_decimals(self.eps_values, eps_format)
        self.live = live
        self.frames = [_check_frame(compute(eps), eps) for eps in self.eps_values]
        self.panel_titles = list(self.frames[0].images)
        self.number_labels = list(self.frames[0].numbers)
        for eps, frame in zip(self.eps_values, self.frames):
            if list(frame.images) != self.panel_titles or list(frame.numbers) != self.number_labels:
                raise ValueError(f"compute({eps}) returned different image titles or number labels than compute({self.eps_values[0]})")
        self.renderer = _Renderer(signed, signed_scale, display_px)
        self.renderer.fit(self.frames)
        self._widget = None
        self._frame_data = None

    def eps_text(self, eps: float) -> str:
        """How the readout prints ``eps`` (static and live alike): exactly, at ``self.decimals``."""
        return f"{eps:.{self.decimals}f}"

    # -- static form -------------------------------------------------------
    def frame_data(self) -> dict:
        """The JSON embedded in the static HTML (also used by the tests); rendered once."""
        if self._frame_data is None:
            self._frame_data = self._render_frames()
        return self._frame_data

    def _render_frames(self) -> dict:
        return {
            "eps": self.eps_values,
            "eps_text": [self.eps_text(e) for e in self.eps_values],
            "frames": [
                {
                    "images": [base64.b64encode(self.renderer.png(t, f.images[t])).decode() for t in self.panel_titles],
                    "numbers": [_tidy_number(f.numbers[k]) for k in self.number_labels],
                }
                for f in self.frames
            ],
        }

    def to_html(self) -> str:
        data = self.frame_data()
        payload = json.dumps(data, separators=(",", ":"))
        dom_id = "advex-slider-" + hashlib.sha256(payload.encode()).hexdigest()[:12]
        first = data["frames"][0]
        panels = "".join(
            f'<figure style="margin:0;text-align:center"><img data-panel="{i}" alt="{html.escape(t)}" '
            f'src="data:image/png;base64,{first["images"][i]}" style="max-width:100%;image-rendering:pixelated;border:1px solid #ccc">'
            f'{self._key(t)}<figcaption style="font-size:0.85em">{html.escape(t)}</figcaption></figure>'
            for i, t in enumerate(self.panel_titles)
        )
        # the track's values under it, evenly spaced as the frames are (one step of the track per frame)
        # (labels of equal width, so that space-between puts each under its stop of the track)
        width = max(len(text) for text in data["eps_text"])
        ticks = "".join(f'<span style="min-width:{width}ch;text-align:center">{html.escape(text)}</span>'
                        for text in _tick_labels(data["eps_text"]))
        tick_row = (f'<span class="advex-ticks" aria-hidden="true" style="display:flex;justify-content:space-between;'
                    f'font-size:0.7em;font-family:monospace">{ticks}</span>')
        rows = "".join(
            f'<tr><th style="text-align:left;padding-right:1em">{html.escape(k)}</th>'
            f'<td data-number="{i}" style="font-family:monospace">{html.escape(first["numbers"][i])}</td></tr>'
            for i, k in enumerate(self.number_labels)
        )
        heading = f'<div style="font-weight:bold">{html.escape(self.title)}</div>' if self.title else ""
        return (
            f'<div class="advex-slider" id="{dom_id}" style="border:1px solid #ccc;border-radius:6px;padding:0.6em;margin:0.5em 0">'
            f"{heading}"
            f'<label style="display:flex;gap:0.6em;align-items:center">{html.escape(self.label)} = '
            f'<output class="advex-eps" style="font-family:monospace;min-width:4em">{data["eps_text"][0]}</output>'
            f'<span style="flex:1;display:flex;flex-direction:column">'
            f'<input class="advex-range" type="range" min="0" max="{len(self.eps_values) - 1}" step="1" value="0" '
            f'aria-label="{html.escape(self.label)}" style="width:100%">{tick_row}</span></label>'
            f'<div style="display:flex;flex-wrap:wrap;gap:0.8em;align-items:flex-end;margin-top:0.4em">{panels}'
            f'<table class="advex-numbers" style="margin-left:0.5em">{rows}</table></div>'
            f'<script type="application/json" class="advex-frames">{payload}</script>'
            f"<script>{_SCRIPT % {'id': json.dumps(dom_id)}}</script></div>"
        )

    def _key(self, title: str) -> str:
        """The colour key under a signed panel ('' for the others); one scale for every frame."""
        return _colour_key_html(self.renderer.signed_scale or 0.0) if title in self.renderer.signed else ""

    # -- live form ---------------------------------------------------------
    def widget(self):
        """The ipywidgets control that recomputes ``compute(eps)`` as the reader drags."""
        if self._widget is None:
            import ipywidgets as widgets

            grid = self.eps_values
            # The readout prints the value at self.decimals, and every reachable value is a whole number
            # of steps from grid[0], each step a whole number of the readout's last digit: what the reader
            # sees is what the frame is computed with (update() also snaps away float noise of the front end).
            step = round(_live_step_units(grid, self.decimals) * 10.0**-self.decimals, self.decimals)
            slider = widgets.FloatSlider(
                value=grid[0], min=grid[0], max=grid[-1], step=step,
                description=self.label, readout_format=f".{self.decimals}f",
                continuous_update=True, layout=widgets.Layout(width="95%"),
            )
            images = [widgets.Image(format="png", layout=widgets.Layout(max_width="260px")) for _ in self.panel_titles]
            captions = [widgets.VBox([img, widgets.HTML(f"{self._key(t)}<center>{html.escape(t)}</center>")])
                        for img, t in zip(images, self.panel_titles)]
            numbers = widgets.HTML()

            def update(change=None):
                eps = check_eps(round(slider.value, self.decimals), "eps")
                if eps != slider.value:  # e.g. 0.35000000000000003 from the front end: show and compute 0.35
                    slider.value = eps  # calls update() again with the snapped value
                    return
                frame = _check_frame(self.compute(eps), eps)
                for img, t in zip(images, self.panel_titles):
                    img.value = self.renderer.png(t, frame.images[t])
                numbers.value = "<table>" + "".join(
                    f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
                    f"<td style='font-family:monospace'>{html.escape(_tidy_number(frame.numbers[k]))}</td></tr>"
                    for k in self.number_labels
                ) + "</table>"

            slider.observe(update, names="value")
            update()
            children = [widgets.HTML(f"<b>{html.escape(self.title)}</b>")] if self.title else []
            self._widget = widgets.VBox(children + [slider, widgets.HBox(captions + [numbers])])
        return self._widget

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = {"text/plain": f"<advex ε slider: {len(self.eps_values)} frames>", "text/html": self.to_html()}
        if self.live:
            try:
                live_bundle = self.widget()._repr_mimebundle_()
            except Exception:  # no ipywidgets comm (plain Python): the static form still works
                live_bundle = None
            if live_bundle:
                bundle["application/vnd.jupyter.widget-view+json"] = live_bundle["application/vnd.jupyter.widget-view+json"]
        return bundle


def eps_slider(
    compute: Callable[[float], Frame],
    eps_values: Sequence[float],
    *,
    label: str = "ε",
    title: str = "",
    signed: Sequence[str] = (),
    signed_scale: float | None = None,
    display_px: int = 168,
    live: bool = True,
    eps_format: str = ".3f",
) -> SliderView:
    """Show ``compute(eps)`` for ε along a slider, live in Jupyter and static in the HTML book.

    compute:     ε -> :class:`Frame` (images and formatted numbers).
    eps_values:  the grid precomputed for the static page (strictly increasing, each >= 0);
                 the live slider covers the same range in finer steps that include the grid.
    eps_format:  fixed-point format of the ε readout (".2f"); a grid value that it would round gets
                 more decimals, so the readout always shows the exact ε a frame is computed with.
    signed:      image titles drawn with a diverging colormap (perturbations).
    signed_scale: the colour scale of signed images; default: their largest |value| over the grid.
    """
    values = [check_eps(e, "eps_values") for e in eps_values]
    if not values:
        raise ValueError("eps_values must hold at least one value")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError("eps_values must be strictly increasing")
    if not callable(compute):
        raise ValueError("compute must be a function eps -> Frame")
    return SliderView(compute, values, label, title, signed, signed_scale, display_px, live, eps_format)
