"""Open chapters in JupyterLab (with the pinned jupyterlab-myst) in headless Chromium, without running them, and
report whether every inline number ({eval}`glued(...)`) shows its stored value rather than raw markup.

    .venv/bin/python scripts/check_jupyterlab.py 01_a_dot_product_you_can_fool.ipynb [...]

RUN_ALL=1 first runs every cell (Run > Run All Cells, text cells included, which asks the kernel to evaluate
each glued(...)), waits RUN_WAIT seconds (default 90) and then checks; fine for chapter 1, too short for the
longer chapters on a laptop.  Needs Chromium (/usr/bin/chromium).  Exits 1 when a number is missing or raw markup shows.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

from advex.glue import GLUED_CALL

ROOT = Path(__file__).resolve().parents[1]
PORT = 8899

# a copy of the chapters, so that JupyterLab's metadata edits never touch the repository
work = Path(tempfile.mkdtemp(prefix="advex-lab-"))
shutil.copytree(ROOT / "chapters", work / "chapters")
shutil.copy(ROOT / "_toc.yml", work / "_toc.yml")   # DOC::NAME references find the book's root by it
settings = work / "settings" / "@jupyterlab" / "notebook-extension"
settings.mkdir(parents=True)
# render every cell, not only those scrolled into view, so that the page text holds the whole notebook
(settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(work / "settings"))
lab = subprocess.Popen([str(ROOT / ".venv/bin/jupyter"), "lab", "--no-browser", f"--port={PORT}", "--allow-root",
                        "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
                        f"--ServerApp.root_dir={work}"], env=env, stdout=open(work / "lab.log", "w"),
                       stderr=subprocess.STDOUT)
for _ in range(90):
    try:
        urllib.request.urlopen(f"http://localhost:{PORT}/api")
        break
    except OSError:
        time.sleep(1)
else:
    lab.terminate()
    sys.exit(f"JupyterLab did not start in 90 s; see {work / 'lab.log'}")

failed = False
try:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=["--no-sandbox"])
        for name in sys.argv[1:]:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://localhost:{PORT}/lab/workspaces/w{name[:2]}/tree/chapters/{name}?reset", wait_until="networkidle")
            page.wait_for_timeout(12000)
            if os.environ.get("RUN_ALL") == "1":
                page.click("text=Run", timeout=10000)
                page.click("text=Run All Cells", timeout=10000)
                page.wait_for_timeout(int(os.environ.get("RUN_WAIT", "90")) * 1000)
            text = page.inner_text(".jp-Notebook")
            nb = json.loads((ROOT / "chapters" / name).read_text())
            wanted = [e["result"]["data"]["text/plain"] for c in nb["cells"] for e in c["metadata"].get("user_expressions", [])]
            missing = [w for w in wanted if w not in text]
            raw = GLUED_CALL.findall(text)   # an expression shown as code, not as its value
            print(name, "expressions:", len(wanted), "shown:", len(wanted) - len(missing), "missing:", missing[:5], "raw:", raw[:3],
                  "raw {glue:", text.count("{glue"), "raw {eval}:", text.count("{eval}"))
            errors = [w for w in ("Traceback", "KeyError", "NameError", "SyntaxError") if w in text]
            print("  errors shown:", errors)
            failed = failed or bool(errors or missing or raw or "{glue" in text or "{eval}" in text)
            page.close()
        browser.close()
finally:
    lab.terminate()
sys.exit(1 if failed else 0)
