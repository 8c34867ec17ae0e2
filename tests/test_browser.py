"""The built HTML book in a real browser, with the network cut off.

Headless Chromium (Debian's package) driven by Playwright.  Every request that
does not go to the local test server is aborted and recorded, so a page that
needs a CDN fails here.  Skips, with the reason, where Chromium or Playwright
is missing; ``.ci/run`` installs Chromium so CI always runs these tests.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps",
]
CHAPTER_1 = "chapters/01_a_dot_product_you_can_fool.html"


@pytest.fixture(scope="module")
def server(built_book: Path):
    handler = functools.partial(QuietHandler, directory=str(built_book))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output readable
        pass


def skip_or_fail(reason: str):
    """CI sets ADVEX_REQUIRE_BROWSER=1: there a missing browser must fail, not skip."""
    if os.environ.get("ADVEX_REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        skip_or_fail("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    try:
        import playwright.sync_api as playwright_api
    except ImportError:
        skip_or_fail("playwright is not installed (pip install -r requirements.txt)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


class OfflinePage:
    """A page whose only network is the local server; records console errors and blocked requests."""

    def __init__(self, browser, server: str):
        self.context = browser.new_context()
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.server = server

    def _route(self, route):
        url = route.request.url
        if url.startswith(self.server) or url.startswith("data:"):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def open(self, path: str):
        self.page.goto(f"{self.server}/{path}", wait_until="load")
        return self.page


@pytest.fixture
def offline(browser, server):
    page = OfflinePage(browser, server)
    yield page
    page.context.close()


def test_chapter1_slider_at_half_shows_karpathy_numbers(offline):
    page = offline.open(CHAPTER_1)
    slider = page.locator(".advex-slider").first
    frames = json.loads(slider.locator("script.advex-frames").text_content())
    target = frames["eps"].index(0.5)
    range_input = slider.locator("input.advex-range")
    range_input.focus()
    for _ in range(target):  # drive it the way a reader does: keyboard steps of one frame
        page.keyboard.press("ArrowRight")
    assert slider.locator("output.advex-eps").text_content() == "0.50"
    numbers = dict(zip(slider.locator("th").all_text_contents(), slider.locator("td").all_text_contents()))
    assert numbers["score"] == "2.00"
    assert numbers["P(class 1)"] == "0.88"
    assert numbers["predicted class"] == "1"
    image_before = slider.locator("img[data-panel='2']").get_attribute("src")
    page.keyboard.press("Home")
    assert slider.locator("td").all_text_contents()[0] == "-3.00"
    assert slider.locator("img[data-panel='2']").get_attribute("src") != image_before
    assert offline.errors == [], f"console errors: {offline.errors}"
    assert offline.blocked == [], f"page tried to reach the network: {offline.blocked}"


def test_chapter1_math_renders_offline(offline):
    page = offline.open(CHAPTER_1)
    page.wait_for_selector("mjx-container", timeout=20_000)
    assert page.locator("mjx-container").count() > 10
    assert "$$" not in page.locator("main").inner_text()
    assert offline.blocked == [], f"page tried to reach the network: {offline.blocked}"


def chapter_pages(build: Path) -> list[str]:
    return sorted(str(p.relative_to(build)) for p in (build / "chapters").glob("*.html"))


def test_every_chapter_slider_switches_frames_offline(offline, built_book):
    pages = chapter_pages(built_book)
    assert CHAPTER_1 in pages
    for path in pages:
        page = offline.open(path)
        sliders = page.locator(".advex-slider")
        assert sliders.count() >= 1, f"{path} has no ε slider"
        for i in range(sliders.count()):
            slider = sliders.nth(i)
            if not slider.is_visible():   # in a folded solution: unfold it, as a reader would
                solution = slider.locator("xpath=ancestor::div[contains(@class, 'dropdown')][1]")
                solution.locator(".admonition-title").first.click()
                slider.wait_for(state="visible", timeout=5_000)
            last = int(slider.locator("input.advex-range").get_attribute("max"))
            first_numbers = slider.locator("td").all_text_contents()
            first_images = [img.get_attribute("src") for img in slider.locator("img[data-panel]").all()]
            slider.locator("input.advex-range").focus()
            page.keyboard.press("End")
            frames = json.loads(slider.locator("script.advex-frames").text_content())
            assert slider.locator("output.advex-eps").text_content() == frames["eps_text"][last], path
            assert slider.locator("td").all_text_contents() == frames["frames"][last]["numbers"], path
            changed = (slider.locator("td").all_text_contents() != first_numbers or
                       [img.get_attribute("src") for img in slider.locator("img[data-panel]").all()] != first_images)
            assert changed, f"slider {i} of {path} shows the same frame at both ends"
        assert offline.errors == [], f"{path}: console errors {offline.errors}"
        assert offline.blocked == [], f"{path}: tried to reach the network: {offline.blocked}"


def test_sliders_fit_a_400_pixel_screen(offline, built_book):
    """On a phone-sized page every chapter's first ε slider keeps its whole track on screen."""
    for path in chapter_pages(built_book):
        page = offline.open(path)
        page.set_viewport_size({"width": 400, "height": 800})
        slider = page.locator(".advex-slider").first
        slider.scroll_into_view_if_needed()
        box, track = slider.bounding_box(), slider.locator("input.advex-range").bounding_box()
        assert track["width"] >= 150, f"{path}: the ε track is only {track['width']:.0f} px wide"
        assert track["x"] + track["width"] <= box["x"] + box["width"], f"{path}: the ε track runs off its box"
        assert page.evaluate("document.documentElement.scrollWidth") <= 400, f"{path}: the page scrolls sideways"
