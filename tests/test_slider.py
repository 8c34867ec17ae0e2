"""The ε slider: static frames equal direct computation; bad arguments are refused."""
import base64
import json
import re

import numpy as np
import pytest

import advex
from advex.theory import toy
from advex.viz.slider import _diverging

W, X = toy.KARPATHY_W, toy.KARPATHY_X


def toy_frame(eps):
    eta = toy.worst_case_linf(W, eps)
    s = toy.score(W, X + eta)
    return advex.Frame(images={"x": X, "η": eta, "x + η": X + eta}, numbers={"score": f"{s:.2f}", "P": f"{toy.sigmoid(s):.2f}"})


GRID = np.round(np.arange(0, 1.0001, 0.05), 2)


@pytest.fixture(scope="module")
def view():
    return advex.eps_slider(toy_frame, GRID)


def test_static_frames_equal_direct_computation(view):
    data = view.frame_data()
    assert data["eps"] == list(GRID)
    for eps, frame in zip(data["eps"], data["frames"]):
        s = W @ (X + eps * np.sign(W))  # the frame's numbers, computed independently
        score = f"{s:.2f}".replace("-0.00", "0.00")   # a negative zero is shown without its sign
        assert frame["numbers"] == [score, f"{1 / (1 + np.exp(-s)):.2f}"]
        for png in frame["images"]:
            assert base64.b64decode(png).startswith(b"\x89PNG")
    half = data["eps"].index(0.5)
    assert data["frames"][half]["numbers"] == ["2.00", "0.88"]


def test_html_embeds_the_frames_and_needs_no_network(view):
    page = view.to_html()
    payload = re.search(r'<script type="application/json" class="advex-frames">(.*?)</script>', page).group(1)
    assert json.loads(payload) == view.frame_data()
    assert "http://" not in page and "https://" not in page
    again = advex.eps_slider(toy_frame, GRID[:3])
    assert again.to_html() == advex.eps_slider(toy_frame, GRID[:3]).to_html(), "deterministic page (stable ids)"


def test_bundle_offers_widget_and_static_forms():
    bundle = advex.eps_slider(toy_frame, GRID[:2])._repr_mimebundle_()
    assert "text/html" in bundle and "text/plain" in bundle
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_live_widget_recomputes_off_grid(view):
    widget = view.widget()
    slider, panels = widget.children
    slider.value = 0.33  # not on the static grid: the live slider recomputes
    numbers_html = panels.children[-1].value
    assert f"{-3 + 10 * 0.33:.2f}" in numbers_html


def test_signed_images_use_one_scale_across_frames():
    frames = {e: advex.Frame(images={"η": np.full((2, 2), e)}, numbers={}) for e in (0.1, 0.2)}
    view = advex.eps_slider(lambda e: frames[e], [0.1, 0.2], signed=["η"])
    assert view.renderer.signed_scale == pytest.approx(0.2)
    assert np.allclose(_diverging(np.array([0.0]), 1.0), [[1, 1, 1]])


@pytest.mark.parametrize("kwargs, match", [
    (dict(eps_values=[]), "at least one"),
    (dict(eps_values=[0.2, 0.1]), "strictly increasing"),
    (dict(eps_values=[-0.1, 0.1]), "eps_values must be >= 0"),
    (dict(eps_values=[0.0, float("nan")]), "eps_values must be finite"),
])
def test_bad_grids_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        advex.eps_slider(toy_frame, **kwargs)


def test_compute_must_return_consistent_frames():
    with pytest.raises(ValueError, match="must return an advex.Frame"):
        advex.eps_slider(lambda e: {"score": e}, [0.0])
    with pytest.raises(ValueError, match="different image titles"):
        advex.eps_slider(lambda e: advex.Frame(numbers={f"k{e}": "1"}), [0.0, 0.1])


def test_live_readout_shows_the_value_each_frame_is_computed_with():
    """Chapter 1's slider (frames every 0.05, readout ".2f") used to step by 0.0125 and show 0.125 as "0.12"."""
    computed = []

    def spy(eps):
        computed.append(eps)
        return toy_frame(eps)

    slider = advex.eps_slider(spy, GRID, eps_format=".2f").widget().children[0]
    positions = round((slider.max - slider.min) / slider.step)
    assert positions >= 2 * (len(GRID) - 1), "the live slider has positions between the frames"
    for k in range(positions + 1):
        slider.value = slider.min + k * slider.step  # the front end's arithmetic, float noise included
        readout = format(slider.value, slider.readout_format)
        assert float(readout) == computed[-1], f"readout {readout}, frame computed at {computed[-1]}"
    reachable = {format(slider.min + k * slider.step, slider.readout_format) for k in range(positions + 1)}
    assert {format(e, ".2f") for e in GRID} <= reachable, "every static frame is a live position too"


def test_static_readout_never_rounds_a_grid_value():
    grid = np.round(np.linspace(0.0, 0.25, 21), 4)  # chapter 2's grid, steps of 0.0125, default ".3f"
    data = advex.eps_slider(toy_frame, grid).frame_data()
    assert data["eps_text"][1] == "0.0125"
    assert [float(text) for text in data["eps_text"]] == data["eps"]
    with pytest.raises(ValueError, match="fixed-point format"):
        advex.eps_slider(toy_frame, grid, eps_format=".2e")


def test_static_slider_labels_its_track_and_keys_its_signed_panels():
    import numpy as np

    def compute(eps):
        return advex.Frame(images={"perturbation": np.full((4, 4), -eps), "image": np.full((4, 4), 0.5)},
                           numbers={"score": f"{-eps * 1e-4:.2f}"})

    html = advex.eps_slider(compute, [0.0, 0.1, 0.2], signed=["perturbation"], eps_format=".1f").to_html()
    ticks = re.search(r'class="advex-ticks"[^>]*>(.*?)</span></label>', html).group(1)
    assert re.findall(r">([^<]+)</span>", ticks) == ["0.0", "0.1", "0.2"]
    assert html.count('class="advex-key"') == 1, "a colour key under the signed panel only"
    assert "\u22120.2" in html and "+0.2" in html, "the key shows the common scale, the largest |value|"
    numbers = json.loads(re.search(r'class="advex-frames">(.*?)</script>', html).group(1))["frames"]
    assert [f["numbers"][0] for f in numbers] == ["0.00", "0.00", "0.00"], "no '-0.00'"


def test_tick_labels_thin_out_on_a_long_track():
    from advex.viz.slider import _tick_labels

    texts = [str(i) for i in range(30)]
    shown = [t for t in _tick_labels(texts) if t]
    assert shown[0] == "0" and shown[-1] == "29" and 4 <= len(shown) <= 12
    assert [t for t in _tick_labels([str(i) for i in range(12)]) if t] == [str(i) for i in range(12)]


@pytest.mark.parametrize("frames", range(13, 80))
def test_tick_labels_are_evenly_spaced(frames):
    """The first and last frames labelled, at most 12 labels, equal steps between them; only when no step
    divides the track evenly, a last step between half and one and a half of the others."""
    from advex.viz.slider import _tick_labels

    labelled = [i for i, t in enumerate(_tick_labels([str(i) for i in range(frames)])) if t]
    steps = [b - a for a, b in zip(labelled, labelled[1:])]
    assert labelled[0] == 0 and labelled[-1] == frames - 1 and 4 <= len(labelled) <= 12
    assert len(set(steps[:-1])) == 1 and 0.5 * steps[0] <= steps[-1] <= 1.5 * steps[0]
    if (frames - 1) % steps[0] == 0:
        assert len(set(steps)) == 1
    if frames == 16:                                  # chapter 4's track: every third frame
        assert steps == [3] * 5


def test_negative_zero_loses_its_sign_and_nothing_else():
    from advex.viz.slider import _tidy_number

    assert _tidy_number("-0.00") == "0.00" and _tidy_number("\u22120.0%") == "0.0%" and _tidy_number("-0") == "0"
    assert _tidy_number("-0.01") == "-0.01" and _tidy_number("-0.5") == "-0.5" and _tidy_number("-10.00") == "-10.00"
    assert _tidy_number("score -0.00, margin -3.20") == "score 0.00, margin -3.20"
