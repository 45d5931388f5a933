"""The dashboard's Pareto panel in real headless Chromium (Debian's ``chromium``) via Playwright,
against the app ``sweepq web`` serves (tests/integration/test_browser.py's fixtures): a sweep of
two objectives (a scatter with the front's staircase) and one of three (a pairs plot), each
point linked to its run; a sweep of one metric shows no panel.

Screenshot: docs/img/pareto.png when ``SWEEPQ_SCREENSHOTS=1`` (else a temp folder).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sweepq.store import Store
from tests.conftest import wait_for
from tests.integration import test_browser as tb

pytestmark = [pytest.mark.redis, pytest.mark.slow]

# the shared fixtures (one Chromium per module, the in-process server)
browser = tb.browser
serve_app = tb.serve_app
Page = tb.Page

TEXTS = "(sel) => [...document.querySelectorAll(sel)].map(e => e.textContent)"


def mo_sweep(
    store: Store, objectives: list[dict[str, str]], points: list[dict[str, Any]]
) -> tuple[str, list[str]]:
    """A sweep of ``objectives`` whose trials finished logging ``points`` (each trial's summary
    values, as the worker sends them), driven through the store's real transitions."""
    from sweepq.config import load_config

    sid = store.create_sweep(
        load_config(
            {
                "method": "random",
                "name": "pareto <b>test</b>",
                "metric": objectives,
                "program": str(tb.TRIAL),
                "parameters": {"x": {"min": 0.0, "max": 1.0}},
            }
        )
    )
    tids = store.create_trials(sid, [{"x": i / len(points)} for i in range(len(points))])
    for tid, values in zip(tids, points, strict=True):
        owner = f"o-{tid}"
        assert store.claim(sid, tid, owner, "w@test", 30).ok
        objs = json.dumps(values)
        first = values[objectives[0]["name"]]
        assert store.log_metrics(
            sid, tid, owner, [first], [json.dumps({**values, "_step": 0})], objectives=objs
        )
        assert store.finish_trial(sid, tid, owner, "finished", 0, goal=objectives[0]["goal"], objectives=objs)
    return sid, tids


def drawn(page: Any) -> dict[str, Any]:
    """What the Pareto panel drew: its data attributes, and the run ids of its SVG points."""
    return page.evaluate(
        """() => {
            const g = document.getElementById('pareto');
            const pts = [...g.querySelectorAll('path.point[data-run-id]')];
            return {
                objectives: +g.dataset.objectives, points: +g.dataset.points, front: +g.dataset.front,
                nodes: pts.length,
                ids: [...new Set(pts.map(p => p.dataset.runId))],
                frontIds: [...new Set(pts.filter(p => p.dataset.front === 'true').map(p => p.dataset.runId))],
            };
        }"""
    )


def click_point(page: Any, rid: str) -> None:
    """Click run ``rid``'s (first) point until its detail opens (Plotly picks the point under the
    mouse; the detail is fetched from the API)."""

    def opened() -> bool:
        box = page.locator(f'#pareto path.point[data-run-id="{rid}"]').first.bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        title = page.locator("#run-detail:not([hidden]) h2").first
        try:
            title.wait_for(timeout=2000)
        except Exception:
            return False
        return title.inner_text() == f"Run {rid}"

    wait_for(opened, 20, 0.2, f"run {rid}'s detail to open from its Pareto point")


def test_pareto_panel_two_objectives(browser, store: Store, serve_app) -> None:  # noqa: ANN001
    objectives = [{"name": "acc", "goal": "maximize"}, {"name": "size", "goal": "minimize"}]
    points = [
        {"acc": 0.90, "size": 1200},  # front
        {"acc": 0.80, "size": 1000},  # front
        {"acc": 0.70, "size": 1300},  # dominated
        {"acc": 0.90, "size": 1200},  # front (a tie)
        {"acc": 0.95, "size": 2000},  # front
        {"acc": 0.60, "size": 900},  # front
        {"acc": 0.80, "size": 1100},  # dominated
        {"acc": 0.75, "size": 1500},  # dominated
        {"acc": 0.85},  # no size: not drawn
    ]
    sid, tids = mo_sweep(store, objectives, points)
    front = [tids[i] for i in (4, 0, 3, 1, 5)]
    url = serve_app({"api_token": None})
    pg = Page(browser, url)
    page = pg.page
    try:
        page.goto(f"{url}/#/sweep/{sid}")
        page.wait_for_function(
            "(n) => document.querySelectorAll('#pareto path.point[data-run-id]').length === n",
            arg=8,
            timeout=30000,
        )
        got = drawn(page)
        assert got["objectives"] == 2 and got["points"] == 8 and got["front"] == 5
        assert got["nodes"] == 8 and sorted(got["ids"]) == sorted(tids[:8])
        assert sorted(got["frontIds"]) == sorted(front)
        # the front's staircase, and axes named with their goals
        trace_names = page.evaluate("() => document.getElementById('pareto').data.map(t => t.name)")
        assert trace_names == ["front", "dominated", "Pareto front"]
        step = page.evaluate("() => document.getElementById('pareto').data[0]")
        assert step["line"]["shape"] == "vh" and len(step["x"]) == 5 and step["x"] == sorted(step["x"])
        assert page.evaluate(TEXTS, "#pareto .g-xtitle") == ["acc (maximize)"]
        assert page.evaluate(TEXTS, "#pareto .g-ytitle") == ["size (minimize)"]
        assert "8 finished runs with every objective, 5 on the front" in page.inner_text("#pareto-note")
        assert "1 finished without every value" in page.inner_text("#pareto-note")

        # the best box lists the front, best first on the first objective
        page.wait_for_selector("#pareto-front-table tbody tr", timeout=10000)
        rows = page.evaluate(
            "() => [...document.querySelectorAll('#pareto-front-table tbody tr')].map(r => r.dataset.id)"
        )
        assert rows == front
        # one runs-table column per objective, sortable, in place of the metric column
        page.wait_for_selector('#runs-table th[data-sort="objectives.size"]', timeout=10000)
        heads = page.evaluate(
            "() => [...document.querySelectorAll('#runs-table th')].map(t => t.dataset.sort)"
        )
        assert "objectives.acc" in heads and "metric" not in heads
        assert "objectives acc (maximize), size (minimize)" in page.inner_text("#sweep-sub")
        cells = page.evaluate(
            "(id) => [...document.querySelectorAll(`#runs-table tr[data-id='${id}'] td.objective`)]"
            ".map(td => td.textContent)",
            tids[4],
        )
        assert cells == ["0.95", "2000"]

        tb.IMG.mkdir(parents=True, exist_ok=True)
        page.evaluate("document.getElementById('pareto-card').scrollIntoView()")
        page.locator("#pareto-card").screenshot(path=str(tb.IMG / "pareto.png"))

        # clicking a front point opens its run, with its objectives
        click_point(page, tids[5])
        dd = page.evaluate(
            "() => Object.fromEntries([...document.querySelectorAll('#run-detail dd.objective')]"
            ".map(d => [d.dataset.objective, d.textContent]))"
        )
        assert dd == {"acc": "0.6", "size": "900"}

        # the sweeps list names the objectives and the size of the front
        page.goto(f"{url}/#/")
        page.wait_for_selector(f'#sweeps-table tbody tr[data-id="{sid}"]', timeout=10000)
        cells = page.locator(f'#sweeps-table tbody tr[data-id="{sid}"] td').all_inner_texts()
        assert "acc (maximize), size (minimize)" in cells and "5 on front" in cells
        assert pg.errors == [] and pg.outside() == []
    finally:
        pg.close()


def test_pareto_panel_three_objectives(browser, store: Store, serve_app) -> None:  # noqa: ANN001
    objectives = [
        {"name": "loss", "goal": "minimize"},
        {"name": "acc", "goal": "maximize"},
        {"name": "<i>latency</i>", "goal": "minimize"},  # a name is text, never markup
    ]
    lat = objectives[2]["name"]
    points = [
        {"loss": 0.1, "acc": 0.60, lat: 9.0},  # front (best loss)
        {"loss": 0.2, "acc": 0.90, lat: 9.0},  # front
        {"loss": 0.2, "acc": 0.80, lat: 1.0},  # front (best latency)
        {"loss": 0.3, "acc": 0.95, lat: 9.0},  # front (best acc)
        {"loss": 0.3, "acc": 0.50, lat: 9.5},  # dominated by the first
        {"loss": 0.4, "acc": 0.70, lat: 9.9},  # dominated
    ]
    sid, tids = mo_sweep(store, objectives, points)
    url = serve_app({"api_token": None})
    pg = Page(browser, url)
    page = pg.page
    try:
        page.goto(f"{url}/#/sweep/{sid}")
        # a pairs plot: every pair of 3 objectives (3 panels), each point in each panel
        page.wait_for_function(
            "(n) => document.querySelectorAll('#pareto path.point[data-run-id]').length === n",
            arg=3 * 6,
            timeout=30000,
        )
        got = drawn(page)
        assert got["objectives"] == 3 and got["points"] == 6 and got["front"] == 4
        assert sorted(got["ids"]) == sorted(tids) and sorted(got["frontIds"]) == sorted(tids[:4])
        layout_axes = page.evaluate(
            "() => Object.keys(document.getElementById('pareto').layout).filter(k => /^[xy]axis/.test(k)).sort()"
        )
        assert layout_axes == ["xaxis", "xaxis2", "xaxis3", "yaxis", "yaxis2", "yaxis3"]
        titles = page.evaluate(TEXTS, "#pareto .infolayer text[class$='title']")
        assert sorted(titles) == sorted(
            ["loss (minimize)", "acc (maximize)", "acc (maximize)", f"{lat} (minimize)"]
        )
        assert page.locator("#pareto i, #pareto-card i, #runs-table i").count() == 0

        click_point(page, tids[3])
        assert pg.errors == [] and pg.outside() == []
    finally:
        pg.close()


def test_single_metric_sweep_has_no_pareto_panel(browser, store: Store, serve_app) -> None:  # noqa: ANN001
    sid = store.create_sweep(tb.config(run_cap=2))
    [tid] = store.create_trials(sid, [{"x": 0.5, "opt": "adam", "steps": 1, "sleep": 0.0}])
    assert store.claim(sid, tid, "o", "w@test", 30).ok
    assert store.log_metrics(sid, tid, "o", [0.25], [json.dumps({"loss": 0.25})])
    assert store.finish_trial(sid, tid, "o", "finished", 0)
    url = serve_app({"api_token": None})
    pg = Page(browser, url)
    page = pg.page
    try:
        page.goto(f"{url}/#/sweep/{sid}")
        page.wait_for_selector("#best-value", timeout=15000)
        page.wait_for_selector(f'#runs-table tbody tr[data-id="{tid}"] td.metric', timeout=15000)
        page.wait_for_function("() => document.querySelector('#parallel .main-svg')", timeout=20000)
        assert page.locator("#pareto-card").count() == 0 and page.locator("td.objective").count() == 0
        heads = page.evaluate(
            "() => [...document.querySelectorAll('#runs-table th')].map(t => t.textContent)"
        )
        assert "loss" in heads
        assert page.locator("#app h2").all_inner_texts()[0] == "Best run"
        assert pg.errors == [] and pg.outside() == []
    finally:
        pg.close()
