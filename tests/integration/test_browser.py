"""The dashboard in real headless Chromium (Debian's ``chromium``) via Playwright, against a real
``sweepq web`` process serving a sweep that a real controller and celery worker are running.

Checks: the runs table fills, plots render, pause and resume work from the page, a bad YAML
shows its errors inline, the token prompt works, and the page requests nothing outside its own
host. Screenshots go to docs/img/ (used by the README and docs/dashboard.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlparse

import pytest

from tests.conftest import PROGRAMS, ROOT, _free_port, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow]

CHROMIUM = os.environ.get("SWEEPQ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# screenshots refresh docs/img/ only when asked (SWEEPQ_SCREENSHOTS=1); otherwise a temp folder,
# so a test run leaves the working tree clean
IMG = (
    ROOT / "docs" / "img"
    if os.environ.get("SWEEPQ_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "sweepq-img"
)
TRIAL = str(PROGRAMS / "trial.py")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One Chromium for the module. Missing Chromium is a failure with the fix, never a skip."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium` "
            "(or set SWEEPQ_CHROMIUM to its path); the dashboard tests need a real browser"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class WebProc:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def start_web(sq_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., WebProc]]:
    """Factory: a real ``sweepq web`` process on a free port (terminated at teardown)."""
    procs: list[WebProc] = []

    def start(env: dict[str, str] | None = None) -> WebProc:
        port = _free_port()
        log = tmp_path / f"web-{port}.log"
        argv = [
            sys.executable,
            "-c",
            "import sys; from sweepq.cli import main; sys.exit(main())",
            "web",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        with open(log, "ab") as out:
            p = subprocess.Popen(
                argv,
                env={**sq_env, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(ROOT),
            )
        w = WebProc(p, port, log)
        procs.append(w)

        def up() -> bool:
            assert p.poll() is None, f"sweepq web exited:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(f"{w.url}/healthz", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(up, 30, 0.1, "sweepq web to answer")
        return w

    yield start
    for w in procs:
        w.stop()


@pytest.fixture
def serve_app(store) -> Iterator[Callable[..., str]]:  # noqa: ANN001
    """Factory: the same app ``sweepq web`` serves, on werkzeug's threaded server in a thread of
    this process (for the tests that need no real command: seconds faster to start)."""
    from werkzeug.serving import make_server

    from sweepq.web import create_app

    servers = []

    def start(settings: dict | None = None) -> str:
        srv = make_server("127.0.0.1", 0, create_app(store, settings or {}), threaded=True)
        th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        th.start()
        servers.append((srv, th))
        return f"http://127.0.0.1:{srv.server_port}"

    yield start
    for srv, th in servers:
        srv.shutdown()
        srv.server_close()
        th.join(5)


class Page:
    """A Playwright page that records every request it makes."""

    def __init__(self, browser: object, base: str) -> None:
        self.ctx = browser.new_context(viewport={"width": 1440, "height": 1000})  # type: ignore[attr-defined]
        self.page = self.ctx.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda req: self.requests.append(req.url))
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.base = base

    def outside(self) -> list[str]:
        host = urlparse(self.base).netloc
        return [
            u
            for u in self.requests
            if not u.startswith(("data:", "blob:", "about:")) and urlparse(u).netloc != host
        ]

    def close(self) -> None:
        self.ctx.close()


def config(run_cap: int = 24, steps: int = 4, sleep: float = 0.15) -> dict:
    from sweepq.config import load_config

    return load_config(
        {
            "method": "random",
            "name": "browser <b>test</b>",
            "program": TRIAL,
            "command": ["${env}", sys.executable, "${program}", "${args}"],
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {
                "x": {"min": 0.0, "max": 1.0},
                "opt": {"values": ["adam", "sgd"]},
                "steps": {"value": steps},
                "sleep": {"value": sleep},
            },
            "run_cap": run_cap,
        }
    )


def test_dashboard_live_sweep(browser, store, start_worker, controller, start_web) -> None:  # noqa: ANN001
    sid = store.create_sweep(config(run_cap=400))
    controller()
    start_worker(concurrency=3)
    web = start_web()
    IMG.mkdir(parents=True, exist_ok=True)
    pg = Page(browser, web.url)
    page = pg.page
    try:
        # sweeps list
        page.goto(f"{web.url}/")
        page.wait_for_selector(f'#sweeps-table tbody tr[data-id="{sid}"]', timeout=15000)
        row = page.locator(f'#sweeps-table tbody tr[data-id="{sid}"]')
        assert "browser <b>test</b>" in row.inner_text()  # shown as text, not parsed as HTML
        assert page.locator("#sweeps-table b").count() == 0

        # the sweep page: the runs table fills and follows the sweep live (no reload)
        page.click(f'#sweeps-table tbody tr[data-id="{sid}"] a')
        page.wait_for_selector("#runs-table tbody tr[data-id]", timeout=15000)
        page.wait_for_selector('#runs-table tbody tr[data-state="finished"]', timeout=30000)
        wait_for(lambda: store.counts(sid)["finished"] >= 5, 60, what="5 finished trials")
        page.wait_for_function(
            "() => document.querySelectorAll('#runs-table tbody tr[data-state=\"finished\"]').length >= 5",
            timeout=15000,
        )
        # plots: metric-vs-step curves (SVG), importance table, parallel coordinates
        page.wait_for_function(
            "() => { const g = document.getElementById('curves');"
            " return g && g.data && g.data.some(t => t.y.length > 0) && g.querySelector('.scatterlayer .trace'); }",
            timeout=20000,
        )
        page.wait_for_selector("#importance-table tbody tr", timeout=30000)  # the first fit imports sklearn
        page.wait_for_function(
            "() => { const g = document.getElementById('parallel'); return g && g.data && g.data.length === 1"
            " && g.data[0].type === 'parcoords' && g.querySelector('.main-svg'); }",
            timeout=20000,
        )
        assert page.locator("#best-value").inner_text() != ""
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(IMG / "sweep.png"))

        # the log tail of a finished run, on click (rows move while the sweep runs: retry)
        done_id = page.locator('#runs-table tbody tr[data-state="finished"]').first.get_attribute("data-id")

        def opened() -> bool:
            row = page.locator(f'#runs-table tbody tr[data-id="{done_id}"]')
            if row.count():
                row.first.click()
            title = page.locator("#run-detail h2").first
            return title.count() > 0 and title.inner_text() == f"Run {done_id}"

        wait_for(opened, 20, 0.5, "the run's detail to open")
        page.wait_for_selector("#log-tail")
        assert "ordinary output at step" in page.locator("#log-tail").inner_text()
        page.locator("#run-detail button", has_text="Close").click()

        # sort by metric: the best run first
        page.click('#runs-table th[data-sort="metric"]')
        page.wait_for_function("() => document.querySelector('#runs-table th[data-sort=\"metric\"] .arrow')")
        # filter by state
        page.click('#state-filter button[data-state="finished"]')
        page.wait_for_function(
            "() => [...document.querySelectorAll('#runs-table tbody tr[data-id]')].every("
            "tr => tr.dataset.state === 'finished')",
            timeout=10000,
        )

        # pause and resume from the page
        page.click("#btn-pause")
        page.wait_for_selector('#sweep-state[data-state="paused"]', timeout=10000)
        assert store.sweep_state(sid) == "paused"
        page.click("#btn-resume")
        page.wait_for_selector('#sweep-state[data-state="running"]', timeout=10000)
        assert store.sweep_state(sid) == "running"

        page.goto(f"{web.url}/#/")
        page.wait_for_selector(f'#sweeps-table tbody tr[data-id="{sid}"]')
        page.screenshot(path=str(IMG / "sweeps.png"))
        store.sweep_action(sid, "cancel")
        assert pg.errors == [], pg.errors
        assert pg.outside() == [], pg.outside()
        assert any(u.endswith("/vendor/plotly.min.js") for u in pg.requests)
    finally:
        pg.close()


def test_create_sweep_with_inline_errors(browser, store, serve_app) -> None:  # noqa: ANN001
    url = serve_app({"api_token": None})
    pg = Page(browser, url)
    page = pg.page
    try:
        page.goto(f"{url}/#/new")
        page.wait_for_selector("#yaml-input")
        bad = "method: random\nmetric: {name: loss}\nparameters:\n  lr: {min: 0.1, max: 0.01}\n  <img src=x>: {value: 1}\n"
        page.fill("#yaml-input", bad)
        page.click("#btn-create")
        page.wait_for_selector("#yaml-errors li", timeout=10000)
        errors = page.locator("#yaml-errors li").all_inner_texts()
        assert any(e.startswith("parameters.lr.min") for e in errors), errors
        assert page.locator("#yaml-errors img").count() == 0
        assert store.list_sweeps() == []
        page.screenshot(path=str(IMG / "new-sweep.png"))

        good = "method: grid\nmetric: {name: loss}\nparameters:\n  lr: {values: [0.1, 0.01]}\nprogram: train.py\n"
        page.fill("#yaml-input", good)
        page.wait_for_function(
            "() => document.querySelector('#yaml-status').textContent === 'valid'", timeout=10000
        )
        page.click("#btn-create")
        page.wait_for_url("**/#/sweep/*", timeout=10000)
        [sid] = store.list_sweeps()
        assert page.url.endswith(f"#/sweep/{sid}")
        page.wait_for_selector("#sweep-state[data-state]")
        assert pg.errors == [] and pg.outside() == []
    finally:
        pg.close()


def test_token_prompt(browser, store, serve_app) -> None:  # noqa: ANN001
    sid = store.create_sweep(config(run_cap=2))
    url = serve_app({"api_token": "tok-123"})
    pg = Page(browser, url)
    page = pg.page
    try:
        page.goto(f"{url}/")
        page.wait_for_selector("#token-overlay:not([hidden])", timeout=10000)
        page.fill("#token-input", "wrong")
        page.click("#token-form button[type=submit]")
        page.wait_for_selector("#token-error:not([hidden])", timeout=10000)
        page.fill("#token-input", "tok-123")
        page.click("#token-form button[type=submit]")
        page.wait_for_selector(f'#sweeps-table tbody tr[data-id="{sid}"]', timeout=10000)
        assert page.evaluate("() => localStorage.getItem('sweepq.token')") == "tok-123"
        page.reload()  # asked once: kept in localStorage
        page.wait_for_selector(f'#sweeps-table tbody tr[data-id="{sid}"]', timeout=10000)
        assert page.locator("#token-overlay").is_hidden()
        assert pg.outside() == []
    finally:
        pg.close()


def test_labels_are_text_inside_plotly(browser, store, serve_app) -> None:  # noqa: ANN001
    """Metric keys come from training programs and can be anything; Plotly reads a subset of HTML
    in its labels. Every label (y-axis title, legend, hover, parallel-coordinates dimensions and
    ticks) must show the text as written, and no element may come of it."""
    import json

    from sweepq.config import load_config

    metric = "<img src=x onerror=window.__pwned=1>"
    other = "<b>acc</b> & <i>co</i>"
    param = "<b>p</b>"
    sid = store.create_sweep(
        load_config(
            {
                "method": "random",
                "metric": {"name": metric, "goal": "minimize"},
                "program": TRIAL,
                "parameters": {
                    "x": {"min": 0.0, "max": 1.0},
                    "opt": {"values": ["<i>adam</i>", "sgd &amp; co"]},
                },
            }
        )
    )
    # a parameter key no config could hold: runs can carry any key (the dashboard reads the runs)
    params = [
        {"x": i / 8, "opt": "<i>adam</i>" if i % 2 else "sgd &amp; co", param: (i * 3 % 8) / 8}
        for i in range(8)
    ]
    for i, tid in enumerate(store.create_trials(sid, params)):
        assert store.claim(sid, tid, f"o-{tid}", "w@test", 30).ok
        values = [1.0 - i / 10, 0.5 - i / 20]
        rows = [json.dumps({metric: v, other: 1 - v, "_step": s}) for s, v in enumerate(values)]
        assert store.log_metrics(sid, tid, f"o-{tid}", values, rows)
        assert store.finish_trial(sid, tid, f"o-{tid}", "finished", 0)
    url = serve_app({"api_token": None})
    pg = Page(browser, url)
    page = pg.page
    texts = "(sel) => [...document.querySelectorAll(sel)].map(e => e.textContent)"
    try:
        page.goto(f"{url}/#/sweep/{sid}")
        page.wait_for_function(
            "() => document.querySelector('#curves .scatterlayer .trace')"
            " && document.querySelector('#parallel .axis-title')",
            timeout=30000,
        )
        assert page.evaluate(texts, "#curves .g-ytitle") == [metric]
        assert page.evaluate(texts, "#parallel .axis-title") == ["x", "opt", param, metric]
        assert {"<i>adam</i>", "sgd &amp; co"} <= set(page.evaluate(texts, "#parallel .tick text"))
        # another key of the runs' rows, chosen in the picker
        page.wait_for_function(
            "() => document.querySelectorAll('#curve-key option').length === 2", timeout=30000
        )
        page.select_option("#curve-key", other)
        page.wait_for_function(
            "(t) => document.querySelector('#curves .g-ytitle').textContent === t", arg=other, timeout=10000
        )
        legend = page.evaluate(texts, "#curves .legendtext")
        assert legend and all(t.startswith(f"{sid}-") for t in legend)
        box = page.locator("#curves .scatterlayer .trace .point").first.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_selector("#curves .hoverlayer .hovertext", timeout=10000)
        assert page.evaluate(texts, "#curves .hoverlayer .hovertext")[0].startswith(f"{sid}-")
        # nothing was made of the markup: no elements, no bold or italic runs, no script ran
        made = page.evaluate("""() => document.querySelectorAll(
            '#curves img, #parallel img, #curves b, #parallel b, #curves i, #parallel i, #curves a, #parallel a,'
            + ' #curves tspan[style*="bold"], #parallel tspan[style*="bold"],'
            + ' #curves tspan[style*="italic"], #parallel tspan[style*="italic"]').length""")
        assert made == 0 and page.evaluate("() => window.__pwned === undefined")
        assert pg.errors == [] and pg.outside() == []
    finally:
        pg.close()


def test_impossible_sweep_id_in_the_address_says_unknown_sweep(browser, store, serve_app) -> None:  # noqa: ANN001
    url = serve_app({"api_token": None})
    pg = Page(browser, url)
    try:
        pg.page.goto(f"{url}/#/sweep/{quote('<b>NO:such', safe='')}")
        pg.page.wait_for_selector("#app .card.empty code", timeout=10000)
        assert pg.page.locator("#app .card.empty code").inner_text() == "<b>NO:such"
        assert pg.page.locator("#app b").count() == 0 and pg.errors == []
    finally:
        pg.close()


def test_failed_sweep_shows_why(browser, store, serve_app) -> None:  # noqa: ANN001
    """A sweep that failed shows its state, its one-line reason and its warnings; it cannot be
    stopped or canceled again."""
    from sweepq.config import load_config

    sid = store.create_sweep(
        load_config(
            {
                "method": "random",
                "program": "train.py",
                "metric": {"name": "loss"},
                "parameters": {"x": {"min": 0.0, "max": 1.0}},
            }
        )
    )
    store.set_sweep_fields(
        sid, warnings=["metric 'loss' was never logged by any ended trial; they logged 'acc': check the name"]
    )
    store.sweep_action(
        sid, "fail", reason="its first 3 trials failed; the first: exit code 2: can't open file 'train.py'"
    )
    url = serve_app({"api_token": None})
    pg = Page(browser, url)
    try:
        pg.page.goto(f"{url}/#/sweep/{sid}")
        pg.page.wait_for_selector("#sweep-warnings li", timeout=10000)
        assert pg.page.locator("#sweep-state").inner_text().strip() == "failed"
        assert "can't open file 'train.py'" in pg.page.locator("#sweep-sub").inner_text()
        assert "they logged 'acc'" in pg.page.locator("#sweep-warnings").inner_text()
        assert pg.page.locator("#btn-stop").is_disabled() and pg.page.locator("#btn-cancel").is_disabled()
        assert pg.errors == []
    finally:
        pg.close()


def test_conditional_parameters_show_as_absent(browser, store, serve_app) -> None:  # noqa: ANN001
    """A sweep with ``when``: runs lack the parameters of the other branch. The runs table lists
    only the parameters a run has; parallel coordinates draw every run through every axis, a
    missing value at an "(absent)" tick (never 0, "null" or "undefined"); importance says on how
    many runs a conditional parameter was judged."""
    import json

    from sweepq.config import load_config

    sid = store.create_sweep(
        load_config(
            {
                "method": "random",
                "metric": {"name": "loss", "goal": "minimize"},
                "program": TRIAL,
                "parameters": {
                    "opt": {"values": ["sgd", "adam"]},
                    "lr": {"min": 0.001, "max": 0.1},
                    "momentum": {"min": 0.0, "max": 0.99, "when": {"opt": "sgd"}},
                    "sched": {"values": ["constant", "invscaling"], "when": {"opt": "sgd"}},
                    "beta": {"values": [0.9, 0.99, 0.999], "when": {"opt": "adam"}},
                },
            }
        )
    )
    params: list[dict] = []
    for i in range(12):
        if i % 2:
            params.append(
                {
                    "opt": "sgd",
                    "lr": 0.01 + i / 200,
                    "momentum": i / 13,
                    "sched": ["constant", "invscaling"][i % 4 // 2],
                }
            )
        else:
            params.append({"opt": "adam", "lr": 0.01 + i / 200, "beta": [0.9, 0.99, 0.999][i % 3]})
    for i, tid in enumerate(store.create_trials(sid, params)):
        assert store.claim(sid, tid, f"o-{tid}", "w@test", 30).ok
        loss = 1.0 - i / 20
        assert store.log_metrics(sid, tid, f"o-{tid}", [loss], [json.dumps({"loss": loss, "_step": 0})])
        assert store.finish_trial(sid, tid, f"o-{tid}", "finished", 0)
    url = serve_app({"api_token": None})
    pg = Page(browser, url)
    page = pg.page
    texts = "(sel) => [...document.querySelectorAll(sel)].map(e => e.textContent)"
    try:
        page.goto(f"{url}/#/sweep/{sid}")
        page.wait_for_function(
            "() => document.querySelectorAll('#runs-table tbody tr[data-id]').length === 12"
            " && document.querySelector('#parallel .axis-title')"
            " && document.querySelector('#importance-table tbody tr')",
            timeout=30000,
        )
        # runs table: a run shows the parameters it has, and nothing for the others
        cells = page.evaluate(
            "() => [...document.querySelectorAll('#runs-table tbody tr[data-id]')]"
            ".map(tr => tr.querySelector('td.params').textContent)"
        )
        assert len(cells) == 12
        for text in cells:
            assert text.startswith(("opt=sgd", "opt=adam")), text
            sgd = text.startswith("opt=sgd")
            assert (
                ("momentum=" in text) == sgd and ("sched=" in text) == sgd and ("beta=" in text) == (not sgd)
            )
        table = page.locator("#runs-table").inner_text()
        assert not any(bad in table for bad in ("undefined", "null", "NaN")), table

        # parallel coordinates: one axis per parameter, every run on every axis, no null left
        assert page.evaluate(texts, "#parallel .axis-title") == [
            "opt",
            "lr",
            "momentum",
            "sched",
            "beta",
            "loss",
        ]
        dims = page.evaluate(
            "() => document.getElementById('parallel').data[0].dimensions.map(d => ({"
            " values: Array.from(d.values), tickvals: d.tickvals ? Array.from(d.tickvals) : null,"
            " ticktext: d.ticktext || null}))"
        )
        for d in dims:
            assert len(d["values"]) == 12
            assert all(isinstance(v, (int, float)) for v in d["values"]), d
        momentum, sched, beta = dims[2], dims[3], dims[4]
        for d, n_absent in ((momentum, 6), (sched, 6), (beta, 6)):
            assert d["ticktext"][0] == "(absent)", d
            at = d["tickvals"][0]
            assert sum(1 for v in d["values"] if v == at) == n_absent
            assert at < min(v for v in d["values"] if v != at)  # below the axis's values
        assert sched["ticktext"] == ["(absent)", "constant", "invscaling"]
        ticks = page.evaluate(texts, "#parallel .tick text")
        assert "(absent)" in ticks and not {"null", "undefined", "NaN"} & set(ticks), ticks

        # importance: a conditional parameter judged on the runs that have it
        rows = page.evaluate(
            "() => Object.fromEntries([...document.querySelectorAll('#importance-table tbody tr')]"
            ".map(tr => [tr.dataset.param, tr.cells[0].textContent]))"
        )
        assert set(rows) == {"opt", "lr", "momentum", "sched", "beta"}
        assert rows["momentum"] == "momentum (6 runs)" and rows["opt"] == "opt"
        assert "only on the runs that have it" in page.locator("#importance").inner_text()
        assert not any(bad in page.locator("#importance").inner_text() for bad in ("undefined", "NaN"))
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(IMG / "conditional.png"))
        assert pg.errors == [] and pg.outside() == []
    finally:
        pg.close()
