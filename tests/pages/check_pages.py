#!/usr/bin/env python3
"""ppnet's HTML output opened the way a person opens it: in a real browser (Debian's
chromium-headless-shell, driven through the DevTools protocol over a pipe), from disk, no server.

Makes a demo-sized run (10 classes × 10 prototypes, every stage, an evaluation, an analysis),
its report.html and an explain gallery, then opens the report, the gallery's index.html and one
per-image page at 1280 px and at 390 px wide (a phone) and checks that
  * every <img> loaded (naturalWidth > 0),
  * every link that points inside the output resolves to a file there,
  * no console error, uncaught exception or failed load was logged,
  * the main column does not scroll sideways (a wide table may scroll inside its own box);
and saves a full-page screenshot of each under SHOTS for a person to look at.

Usage: check_pages.py PPNET WORK SHOTS. Exit 0 when every check passes."""
import base64
import json
import os
import select
import shutil
import subprocess
import sys
import urllib.parse

ppnet, work, shots = sys.argv[1], os.path.abspath(sys.argv[2]), os.path.abspath(sys.argv[3])
here = os.path.dirname(os.path.abspath(__file__))
python = os.environ.get("PYTHON", sys.executable)
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def ppnet_run(*args):
    threads = [] if args[0] == "report" else ["--threads", "2"]
    result = subprocess.run([ppnet, *args, *threads], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"check_pages: ppnet {' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout


def make_run():
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    images, data, run = f"{work}/images", f"{work}/data", f"{work}/run"
    subprocess.run([python, f"{here}/../gpu/make_images.py", images, "10", "6"], check=True)
    ppnet_run("prepare", "--folder", images, "--out", data, "--copies", "0", "--test-fraction", "0.34")
    model = ["--arch", "small", "--img-size", "32", "--prototypes-per-class", "10", "--prototype-dim", "16", "--batch-size", "20"]
    ppnet_run("train", "--stage", "warm", "--data", data, "--run", run, *model, "--epochs", "1")
    ppnet_run("train", "--stage", "joint", "--data", data, "--run", run, "--epochs", "1")
    ppnet_run("project", "--data", data, "--run", run)
    ppnet_run("last-layer", "--data", data, "--run", run)
    ppnet_run("evaluate", "--data", data, "--run", run)
    ppnet_run("analyze", "--data", data, "--run", run, "--k", "3")
    ppnet_run("report", "--run", run)
    ppnet_run("explain", "--run", run, "--dir", f"{data}/test", "--out", f"{work}/explained")
    return run


class Browser:
    """Chromium with --remote-debugging-pipe: JSON messages separated by NUL on its fds 3 and 4."""

    def __init__(self, exe, profile):
        to_chromium, self._write = os.pipe()
        self._read, from_chromium = os.pipe()

        def wire():
            os.dup2(to_chromium, 3)
            os.dup2(from_chromium, 4)

        self.proc = subprocess.Popen(
            [exe, "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=wire, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chromium)
        os.close(from_chromium)
        self._buffer = b""
        self._id = 0
        self.events = []

    def _next(self, timeout=60):
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._read], [], [], timeout)
            if not ready:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed its pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def send(self, method, params=None, session=None):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._next()
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def wait_for(self, method, session):
        while True:
            for event in self.events:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            self.events.append(self._next())

    def close(self):
        try:
            self.send("Browser.close")
        except Exception:
            pass
        self.proc.wait(timeout=30)


# Waits for every image to finish (loaded or failed), then reports what a person would notice.
PROBE = """(async () => {
  await Promise.all([...document.images].map(i => i.complete ? null :
      new Promise(done => { i.addEventListener('load', done); i.addEventListener('error', done); })));
  const page = document.scrollingElement;
  return {
    images: document.images.length,
    broken: [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))
                                .map(i => (i.getAttribute('src') || '').slice(0, 100)),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    scrollWidth: page.scrollWidth, viewport: window.innerWidth,
  };
})()"""


def problems(events, session):
    found = []
    for e in events:
        if e.get("sessionId") != session:
            continue
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            found.append("uncaught exception: " + params["exceptionDetails"].get("text", ""))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            found.append("console error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            found.append("logged error: " + params["entry"]["text"] + " " + params["entry"].get("url", ""))
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            found.append("failed load: " + params.get("errorText", ""))
    return found


def check_page(browser, path, width, root, shot):
    name = f"{os.path.relpath(path, root)} at {width} px"
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.send(f"{domain}.enable", session=session)
    browser.send("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600}, session)
    browser.send("Page.navigate", {"url": "file://" + urllib.parse.quote(path)}, session)
    browser.wait_for("Page.loadEventFired", session)
    seen = browser.send("Runtime.evaluate", {"expression": PROBE, "returnByValue": True, "awaitPromise": True},
                        session)["result"]["value"]
    check(not seen["broken"], f"{name}: {len(seen['broken'])} of {seen['images']} images did not load: {seen['broken'][:3]}")
    for link in seen["links"]:
        url = urllib.parse.urlparse(link)
        if url.scheme != "file":
            continue
        target_path = urllib.parse.unquote(url.path)
        inside = os.path.commonpath([os.path.realpath(target_path), os.path.realpath(root)]) == os.path.realpath(root)
        check(inside and os.path.isfile(target_path), f"{name}: link {link} does not resolve to a file in {root}")
    # A page without a viewport declaration is laid out 980 px wide on a phone and shrunk: that
    # counts as too wide as well.
    check(seen["scrollWidth"] <= width and seen["viewport"] == width,
          f"{name}: the page is wider than the screen ({seen['scrollWidth']} px of content, "
          f"laid out {seen['viewport']} px wide)")
    for problem in problems(browser.events, session):
        check(False, f"{name}: {problem}")
    size = browser.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
    picture = browser.send("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": min(size["height"], 12000), "scale": 1}}, session)
    with open(shot, "wb") as f:
        f.write(base64.b64decode(picture["data"]))
    browser.send("Target.closeTarget", {"targetId": target})
    browser.events = [e for e in browser.events if e.get("sessionId") != session]
    return seen["images"]


def main():
    exe = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    if not exe:
        sys.exit("check_pages: chromium-headless-shell is not installed (scripts/install-deps.sh installs it)")
    run = make_run()
    explained = f"{work}/explained"
    per_image = sorted(os.path.join(folder, "index.html") for folder, _, files in os.walk(explained)
                       if folder != explained and "index.html" in files)
    check(per_image, f"explain wrote no per-image page under {explained}")
    pages = [(f"{run}/report.html", run), (f"{explained}/index.html", explained)] + [(p, explained) for p in per_image[:1]]
    shutil.rmtree(shots, ignore_errors=True)
    os.makedirs(shots)
    browser = Browser(exe, f"{work}/chromium-profile")
    try:
        counted = []
        for path, root in pages:
            for width in (1280, 390):
                shot = os.path.join(shots, os.path.relpath(path, work).replace("/", "_").replace(".html", f"-{width}.png"))
                counted.append(check_page(browser, path, width, root, shot))
    finally:
        browser.close()
    for f in failures:
        print("check_pages:", f, file=sys.stderr)
    print(f"check_pages: {len(pages)} pages × 2 widths, {sum(counted)} images; screenshots in {shots}: "
          f"{'all checks passed' if not failures else str(len(failures)) + ' failures'}")
    sys.exit(1 if failures else 0)


main()
