"""The HTML report in a real headless Chromium, driven over the DevTools protocol.

Chromium is started with ``--remote-debugging-pipe``: DevTools messages (JSON, NUL-terminated)
travel over two pipes (the browser reads fd 3, writes fd 4), so the test needs nothing but the
``chromium`` binary (Debian: ``apt-get install chromium``) — no driver, no Python package, no
network port. Without a Chromium the test is skipped.

Checked: the page loads with the right title; every ``<img>`` is complete and decodes with a
natural size > 0; no console error, exception or CSP violation is logged; markup injected
through a layer name never runs (``window.__xss`` stays undefined) and shows as text; a
screenshot can be taken.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import sys
import time

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("pandas")

from nncompare.report import example_frame, write_report

pytestmark = pytest.mark.browser

INJECTED = "<script>window.__xss = 1</script>"
INJECTED_IMG = '<img src=x onerror="window.__xss = 2">'
TITLE = "Browser check: <net A> & 'net B'"
TIMEOUT = 25.0


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class DevToolsPipe:
    """A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe``."""

    def __init__(self, binary: str, user_data_dir: str) -> None:
        cmd_r, self._cmd_w = os.pipe()  # we write commands; the browser reads its fd 3
        self._res_r, res_w = os.pipe()  # the browser writes its fd 4; we read
        # move the child's ends above the target numbers so the dup2s cannot collide
        child_in = fcntl.fcntl(cmd_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_out = fcntl.fcntl(res_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(cmd_r)
        os.close(res_w)
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        args = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--mute-audio",
            f"--user-data-dir={user_data_dir}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        try:
            self.pid = os.posix_spawn(
                binary,
                args,
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, devnull, 0),
                    (os.POSIX_SPAWN_DUP2, devnull, 1),
                    (os.POSIX_SPAWN_DUP2, devnull, 2),
                    (os.POSIX_SPAWN_DUP2, child_in, 3),
                    (os.POSIX_SPAWN_DUP2, child_out, 4),
                ],
            )
        finally:
            for fd in (child_in, child_out, devnull):
                os.close(fd)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict] = []

    # -- transport
    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium over the DevTools pipe")
            ready, _, _ = select.select([self._res_r], [], [], left)
            if ready:
                chunk = os.read(self._res_r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe (did it crash?)")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._cmd_w, data) :]
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str, after: int = 0) -> dict:
        """The first ``method`` event of ``session`` among ``events[after:]`` and later ones."""
        deadline = time.monotonic() + TIMEOUT
        for ev in self.events[after:]:
            if ev.get("method") == method and ev.get("sessionId") == session:
                return ev
        while True:
            ev = self._read_message(deadline)
            self.events.append(ev)
            if ev.get("method") == method and ev.get("sessionId") == session:
                return ev

    def drain(self, seconds: float) -> None:
        """Collect the events that arrive within ``seconds``."""
        deadline = time.monotonic() + seconds
        with contextlib.suppress(TimeoutError):
            while True:
                self.events.append(self._read_message(deadline))

    def evaluate(self, expression: str, session: str) -> object:
        res = self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            session,
        )
        if "exceptionDetails" in res:
            raise RuntimeError(f"page script failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    def navigate(self, url: str, session: str) -> None:
        """Open ``url`` and wait until it has loaded (load event, then the document itself)."""
        mark = len(self.events)
        nav = self.send("Page.navigate", {"url": url}, session)
        assert "errorText" not in nav, nav
        self.wait_event("Page.loadEventFired", session, after=mark)
        deadline = time.monotonic() + TIMEOUT
        check = f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
        while not self.evaluate(check, session):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not finish loading")
            time.sleep(0.05)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.send("Browser.close")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.1)
        else:  # only our own browser process, by its id
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        for fd in (self._cmd_w, self._res_r):
            with contextlib.suppress(OSError):
                os.close(fd)


def console_errors(events: list[dict], session: str) -> list[str]:
    out = []
    for ev in events:
        if ev.get("sessionId") != session:
            continue
        method, params = ev.get("method"), ev.get("params", {})
        if method == "Log.entryAdded" and params["entry"]["level"] == "error":
            out.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        elif method == "Runtime.exceptionThrown":
            out.append(f"exception: {params['exceptionDetails']}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append(f"console: {params.get('args')}")
    return out


@pytest.fixture(scope="module")
def chromium():
    if not sys.platform.startswith("linux"):
        pytest.skip("the DevTools-pipe driver here is written for Linux")
    path = find_chromium()
    if path is None:
        pytest.skip("no chromium binary (apt-get install chromium)")
    return path


def test_report_renders_in_headless_chromium(chromium, tmp_path):
    layers = (INJECTED, "conv2", "conv3", "fc1", INJECTED_IMG, "logits")
    frame = example_frame(
        layers_a=layers, names=("net <A>", "net & 'B'"), measures=("cka", "svcca", "cca")
    )
    files = write_report(frame, tmp_path / "report", title=TITLE)

    browser = DevToolsPipe(chromium, str(tmp_path / "profile"))
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 1800, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        browser.navigate(files.html.resolve().as_uri(), session)

        assert browser.evaluate("document.title", session) == TITLE
        images = browser.evaluate(
            """Promise.all(Array.from(document.images).map(img =>
                   img.decode().then(() => true, () => false).then(ok =>
                       [ok, img.complete, img.naturalWidth, img.naturalHeight, img.alt])))""",
            session,
        )
        assert len(images) == 9  # 3 heatmaps, 3 profiles, 2 spectra, kept dims
        for ok, complete, width, height, alt in images:
            assert ok and complete and width > 0 and height > 0, (alt, width, height)
            assert alt
        # the injected markup did not run and is shown as text
        assert browser.evaluate("typeof window.__xss", session) == "undefined"
        assert browser.evaluate("document.scripts.length", session) == 0
        body_text = browser.evaluate("document.body.innerText", session)
        assert INJECTED in body_text and INJECTED_IMG in body_text
        # the layout is sane: content is wider than a phone and has the sections
        assert browser.evaluate("document.querySelectorAll('h2').length", session) >= 6

        shot = browser.send("Page.captureScreenshot", {"format": "png"}, session)["data"]
        png = base64.b64decode(shot)
        out = tmp_path / "report.png"
        out.write_bytes(png)
        assert out.stat().st_size > 10_000
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        browser.drain(0.3)
        assert console_errors(browser.events, session) == []

        # control: the harness does see errors and scripts on a page that has them
        control = tmp_path / "control.html"
        control.write_text(
            "<!DOCTYPE html><title>control</title>"
            "<script>window.__xss = 3; console.error('control error')</script>"
            '<img src="missing.png" alt="missing">'
        )
        browser.navigate(control.resolve().as_uri(), session)
        assert browser.evaluate("window.__xss", session) == 3
        assert browser.evaluate("document.images[0].naturalWidth", session) == 0
        browser.drain(0.3)
        errors = console_errors(browser.events, session)
        assert any("control error" in e for e in errors)
        assert any("missing.png" in e for e in errors)
    finally:
        browser.close()


def _overlap(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(w, 0.0) * max(h, 0.0)


@pytest.mark.shared
@pytest.mark.slow
def test_newcomer_report_from_the_readme_renders(chromium, shared_dir, tmp_path):
    """The README's "compare two of your own models" command, literally (on a 256-image
    subset): the report opens in Chromium with every figure decoded and no console error,
    the vector figures are written, and the spectra's title and legend do not overlap."""
    from click.testing import CliRunner

    from nncompare import plot
    from nncompare.cli.main import cli
    from nncompare.report import load_results

    data = shared_dir / "data"
    ckpt = data / "akamaster_resnet_cifar10"
    if (
        not (ckpt / "resnet20-12fca82f.th").is_file()
        or not (ckpt / "resnet32-d509ac18.th").is_file()
    ):
        pytest.skip("pretrained ResNets not in shared/")
    out = tmp_path / "report"
    args = [
        "compare",
        "nncompare.models:cifar_resnet(depth=20)",
        "nncompare.models:cifar_resnet(depth=32)",
        "--weights-a", str(ckpt / "resnet20-12fca82f.th"),
        "--weights-b", str(ckpt / "resnet32-d509ac18.th"),
        "--data", str(data / "cifar10" / "cifar10_test_exact1017.npz"),
        "--preset", "cifar",
        "--measure", "cka", "--measure", "svcca",
        "--name-a", "ResNet-20", "--name-b", "ResNet-32",
        "--title", "CIFAR-10 ResNets",
        "--formats", "png,svg",
        "--max-samples", "256",
        "--no-progress",
        "--out", str(out),
    ]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "layout: read (1017, 32, 32, 3) as NHWC (inferred)" in res.output
    svgs = sorted((out / "figures").glob("*.svg"))
    assert {p.stem for p in svgs} >= {"heatmap_cka", "heatmap_svcca", "spectrum_svcca"}

    df = load_results(out / "results.json")
    fig = plot.spectrum(df, "svcca")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    title, legend = fig._suptitle, fig.legends[0]
    assert _overlap(title.get_window_extent(renderer), legend.get_window_extent(renderer)) == 0
    assert _overlap(title.get_window_extent(renderer), fig.axes[0].get_tightbbox(renderer)) == 0

    browser = DevToolsPipe(chromium, str(tmp_path / "profile"))
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=session)
        browser.navigate((out / "report.html").resolve().as_uri(), session)
        assert browser.evaluate("document.title", session) == "CIFAR-10 ResNets"
        images = browser.evaluate(
            """Promise.all(Array.from(document.images).map(img =>
                   img.decode().then(() => true, () => false).then(ok =>
                       [ok, img.naturalWidth, img.naturalHeight, img.alt])))""",
            session,
        )
        assert len(images) >= 5
        for ok, width, height, alt in images:
            assert ok and width > 0 and height > 0, (alt, width, height)
        text = browser.evaluate("document.body.textContent", session)  # incl. closed details
        assert "ResNet-20" in text and "ResNet-32" in text and "layer2.0" in text
        browser.drain(0.3)
        assert console_errors(browser.events, session) == []
    finally:
        browser.close()
