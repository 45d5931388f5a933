"""The HTTP API (docs/dashboard.md) through Flask's test client on a real Redis namespace:
every endpoint, the JSON shapes of section 2, auth, and errors."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import redis.exceptions

from sweepq.store import Store

pytestmark = pytest.mark.redis

STATUS_KEYS = {"id", "state", "method", "metric", "counts", "best"}
RUN_KEYS = ["id", "state", "params", "metric", "steps", "started_at", "ended_at", "worker", "exit_code"]
YAML = """\
method: random
metric: {name: loss, goal: minimize}
parameters:
  x: {min: 0.0, max: 1.0}
  opt:
    parameters:
      kind: {values: [adam, sgd]}
program: train.py
"""


@pytest.fixture
def app(store: Store):  # noqa: ANN201
    from sweepq.web import create_app

    return create_app(store, {"api_token": None})


@pytest.fixture
def client(app):  # noqa: ANN001, ANN201
    return app.test_client()


def make_sweep(store: Store, **over: Any) -> str:
    from sweepq.config import load_config

    cfg = load_config(YAML)
    cfg.update(over)
    return store.create_sweep(cfg)


def run_trial(
    store: Store,
    sid: str,
    tid: str,
    values: list[float],
    state: str = "finished",
    exit_code: int | None = 0,
    log: str = "",
) -> None:
    """Drive one trial through the store's real transitions (claim, metrics, finish)."""
    owner = f"o-{tid}"
    assert store.claim(sid, tid, owner, "worker-1@test", 30).ok
    rows = [json.dumps({"loss": v, "acc": 1 - v, "_step": i}) for i, v in enumerate(values)]
    assert store.log_metrics(sid, tid, owner, values, rows)
    if state != "running":
        assert store.finish_trial(sid, tid, owner, state, exit_code, log_tail=log)


def populated(store: Store, n: int = 12) -> tuple[str, list[str]]:
    sid = make_sweep(store)
    params = [{"x": i / n, "opt": {"kind": "adam" if i % 2 else "sgd"}} for i in range(n)]
    tids = store.create_trials(sid, params)
    for i, tid in enumerate(tids[: n - 3]):
        loss = (i / n - 0.3) ** 2
        run_trial(store, sid, tid, [loss + 1, loss + 0.5, loss], log=f"trial {i} <b>done</b>\n")
    run_trial(store, sid, tids[n - 3], [0.9], state="failed", exit_code=2, log="Traceback: boom\n")
    run_trial(store, sid, tids[n - 2], [0.7], state="running")
    return sid, tids


# -- basics -------------------------------------------------------------------------------------
def test_healthz(client) -> None:  # noqa: ANN001
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json["ok"] is True


def test_list_sweeps_matches_cli_status_shape(client, store: Store) -> None:  # noqa: ANN001
    assert client.get("/api/sweeps").json == []
    sid = make_sweep(store)
    r = client.get("/api/sweeps")
    assert r.status_code == 200
    [st] = r.json
    assert set(st) >= STATUS_KEYS and st["id"] == sid
    assert st == json.loads(json.dumps(store.status(sid)))
    assert set(st["counts"]) == {"queued", "running", "finished", "failed", "crashed", "stopped", "canceled"}
    assert st["metric"] == {"name": "loss", "goal": "minimize"} and st["best"] is None


# -- creating sweeps ----------------------------------------------------------------------------
def test_create_from_yaml(client, store: Store) -> None:  # noqa: ANN001
    r = client.post("/api/sweeps", data=YAML, content_type="application/yaml")
    assert r.status_code == 201, r.json
    sid = r.json["id"]
    assert r.headers["Location"] == f"/api/sweeps/{sid}"
    assert store.sweep_state(sid) == "running"
    assert store.sweep_config(sid)["parameters"]["x"]["distribution"] == "uniform"
    st = client.get(f"/api/sweeps/{sid}").json
    assert set(st) >= STATUS_KEYS and st["method"] == "random"


def test_create_from_json_and_text_plain(client, store: Store) -> None:  # noqa: ANN001
    cfg = {"method": "grid", "parameters": {"a": {"values": [1, 2]}}, "program": "/abs/path/train.py"}
    r = client.post("/api/sweeps", json=cfg)
    assert r.status_code == 201, r.json
    assert store.sweep_config(r.json["id"])["method"] == "grid"
    # one-line JSON sent as text (a str that looks like a path must not be read as a file)
    r = client.post("/api/sweeps", data=json.dumps(cfg), content_type="text/plain")
    assert r.status_code == 201, r.json
    r = client.post("/api/sweeps", json={"config": cfg})
    assert r.status_code == 201, r.json


@pytest.mark.parametrize(
    ("body", "ctype", "needle"),
    [
        (
            "method: random\nparameters:\n  lr: {min: 0.1, max: 0.01}\n",
            "application/yaml",
            "parameters.lr.min",
        ),
        ("method: nope\nparameters:\n  a: {value: 1}\n", "application/yaml", "method"),
        ("method: [unclosed\n", "application/yaml", "not valid YAML"),
        ("", "application/yaml", "empty"),
        ("{not json", "application/json", "not valid JSON"),
    ],
)
def test_create_invalid_is_400_with_per_key_errors(
    client,
    store: Store,
    body: str,
    ctype: str,  # noqa: ANN001
    needle: str,
) -> None:
    r = client.post("/api/sweeps", data=body, content_type=ctype)
    assert r.status_code == 400
    assert isinstance(r.json["errors"], list) and r.json["errors"]
    assert any(needle in e for e in r.json["errors"]), r.json
    assert store.list_sweeps() == []


def test_validate_endpoint(client) -> None:  # noqa: ANN001
    r = client.post("/api/validate", data=YAML, content_type="application/yaml")
    assert r.status_code == 200 and r.json["ok"] is True and r.json["errors"] == []
    assert r.json["config"]["method"] == "random"
    r = client.post("/api/validate", data="method: random\nparameters:\n  lr: {min: 2, max: 1}\n")
    assert r.json["ok"] is False and any(e.startswith("parameters.lr.min") for e in r.json["errors"])


# -- status, actions, 404 -----------------------------------------------------------------------
def test_actions_and_conflicts(client, store: Store) -> None:  # noqa: ANN001
    sid = make_sweep(store)
    assert client.post(f"/api/sweeps/{sid}/pause").json == {"id": sid, "state": "paused"}
    assert client.get(f"/api/sweeps/{sid}").json["state"] == "paused"
    assert client.post(f"/api/sweeps/{sid}/resume").json == {"id": sid, "state": "running"}
    assert client.post(f"/api/sweeps/{sid}/stop").json["state"] == "stopped"
    assert client.post(f"/api/sweeps/{sid}/cancel").json["state"] == "canceled"
    r = client.post(f"/api/sweeps/{sid}/pause")
    assert r.status_code == 409 and "canceled" in r.json["error"]
    assert client.post(f"/api/sweeps/{sid}/explode").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/api/sweeps/nosuch",
        "/api/sweeps/nosuch/runs",
        "/api/sweeps/nosuch/runs/nosuch-1",
        "/api/sweeps/nosuch/config",
        "/api/sweeps/nosuch/curves",
        "/api/sweeps/nosuch/parallel",
        "/api/sweeps/nosuch/importance",
        "/api/sweeps/nosuch/best",
        "/api/no/such/endpoint",
    ],
)
def test_unknown_is_404_json(client, path: str) -> None:  # noqa: ANN001
    r = client.get(path)
    assert r.status_code == 404
    assert r.is_json and r.json["error"]


def test_unknown_sweep_actions_404(client) -> None:  # noqa: ANN001
    for a in ("pause", "resume", "stop", "cancel"):
        r = client.post(f"/api/sweeps/nosuch/{a}")
        assert r.status_code == 404 and "nosuch" in r.json["error"]


def test_run_of_another_sweep_is_404(client, store: Store) -> None:  # noqa: ANN001
    a, b = make_sweep(store), make_sweep(store)
    [tid] = store.create_trials(a, [{"x": 0.1}])
    assert client.get(f"/api/sweeps/{a}/runs/{tid}").status_code == 200
    assert client.get(f"/api/sweeps/{b}/runs/{tid}").status_code == 404


# -- runs ---------------------------------------------------------------------------------------
def test_runs_default_is_the_cli_list(client, store: Store) -> None:  # noqa: ANN001
    sid, tids = populated(store)
    r = client.get(f"/api/sweeps/{sid}/runs")
    assert r.status_code == 200
    cli = [Store.run_json(t) for t in store.get_trials(store.trial_ids(sid), history=False)]
    assert r.json == json.loads(json.dumps(cli))
    assert [x["id"] for x in r.json] == tids
    assert all(list(x)[: len(RUN_KEYS)] == RUN_KEYS for x in r.json)
    assert r.headers["X-Total-Count"] == str(len(tids))
    by_id = {x["id"]: x for x in r.json}
    assert by_id[tids[0]]["state"] == "finished" and by_id[tids[0]]["exit_code"] == 0
    assert by_id[tids[0]]["worker"] == "worker-1@test" and by_id[tids[0]]["steps"] == 3
    assert by_id[tids[-3]]["state"] == "failed" and by_id[tids[-3]]["exit_code"] == 2
    assert by_id[tids[-1]]["state"] == "queued" and by_id[tids[-1]]["metric"] is None


def test_runs_paging_filter_sort(client, store: Store) -> None:  # noqa: ANN001
    sid, tids = populated(store)
    r = client.get(f"/api/sweeps/{sid}/runs?state=finished&sort=metric&limit=3")
    assert r.headers["X-Total-Count"] == "9" and r.headers["X-Total-Unfiltered"] == "12"
    metrics = [x["metric"] for x in r.json]
    assert len(metrics) == 3 and metrics == sorted(metrics)
    allm = sorted(x["metric"] for x in client.get(f"/api/sweeps/{sid}/runs?state=finished").json)
    assert metrics == allm[:3]
    page2 = client.get(f"/api/sweeps/{sid}/runs?state=finished&sort=metric&limit=3&offset=3").json
    assert [x["metric"] for x in page2] == allm[3:6]
    desc = client.get(f"/api/sweeps/{sid}/runs?sort=-metric").json
    # missing values last whatever the direction
    assert [x["metric"] is None for x in desc][-2:] == [False, True]
    assert desc[0]["metric"] == max(x["metric"] for x in desc if x["metric"] is not None)
    ids = [x["id"] for x in client.get(f"/api/sweeps/{sid}/runs?sort=-id").json]
    assert ids == list(reversed(tids))  # by trial number, not as text (…-10 after …-9)
    two = client.get(f"/api/sweeps/{sid}/runs?state=failed,running").json
    assert sorted(x["state"] for x in two) == ["failed", "running"]
    dur = client.get(f"/api/sweeps/{sid}/runs?sort=duration&state=finished").json
    assert len(dur) == 9


@pytest.mark.parametrize(
    "query", ["sort=bogus", "state=sleeping", "limit=-1", "limit=abc", "offset=x", "limit=999999"]
)
def test_runs_bad_query_is_400(client, store: Store, query: str) -> None:  # noqa: ANN001
    sid = make_sweep(store)
    r = client.get(f"/api/sweeps/{sid}/runs?{query}")
    assert r.status_code == 400 and r.json["error"]


def test_runs_follow_live_changes(client, store: Store) -> None:  # noqa: ANN001
    """The per-process cache is refreshed from the events stream: new trials, state changes,
    metrics and sweep-wide cancels all show up."""
    sid = make_sweep(store)
    assert client.get(f"/api/sweeps/{sid}/runs").json == []
    a, b, c = store.create_trials(sid, [{"x": 0.1}, {"x": 0.2}, {"x": 0.3}])
    time.sleep(0.25)
    assert [x["state"] for x in client.get(f"/api/sweeps/{sid}/runs").json] == ["queued"] * 3
    run_trial(store, sid, a, [0.5, 0.25])
    run_trial(store, sid, b, [0.4], state="running")
    time.sleep(0.25)
    runs = {x["id"]: x for x in client.get(f"/api/sweeps/{sid}/runs").json}
    assert runs[a]["state"] == "finished" and runs[a]["metric"] == 0.25
    assert runs[b]["state"] == "running" and runs[b]["metric"] == 0.4
    store.sweep_action(sid, "stop")  # cancels queued c in one script, one sweep event
    time.sleep(0.25)
    runs = {x["id"]: x for x in client.get(f"/api/sweeps/{sid}/runs").json}
    assert runs[c]["state"] == "canceled"


def test_run_detail_curves_parallel_importance(client, store: Store) -> None:  # noqa: ANN001
    sid, tids = populated(store)
    d = client.get(f"/api/sweeps/{sid}/runs/{tids[0]}").json
    assert list(d)[: len(RUN_KEYS)] == RUN_KEYS
    assert d["log_tail"] == "trial 0 <b>done</b>\n"
    assert len(d["history"]) == 3 and d["history"][-1] == d["metric"]
    assert [row["_step"] for row in d["rows"]] == [0, 1, 2] and set(d["keys"]) == {"loss", "acc"}
    assert client.get(f"/api/sweeps/{sid}/runs/{tids[-3]}").json["log_tail"].startswith("Traceback")

    cur = client.get(f"/api/sweeps/{sid}/curves").json
    assert cur["key"] == "loss" and 1 <= len(cur["runs"]) <= 5
    assert cur["runs"][0]["steps"] == [0.0, 1.0, 2.0]
    cur = client.get(f"/api/sweeps/{sid}/curves?runs={tids[1]},{tids[2]},nosuch&key=acc").json
    assert [r["id"] for r in cur["runs"]] == [tids[1], tids[2]] and cur["key"] == "acc"

    par = client.get(f"/api/sweeps/{sid}/parallel").json
    assert len(par["ids"]) == len(par["metric"]) == 11  # every run with a metric value
    assert par["metric"] == sorted(par["metric"])
    dims = {d["name"]: d for d in par["dimensions"]}
    assert dims["x"]["type"] == "numeric" and dims["opt.kind"]["type"] == "categorical"
    assert dims["opt.kind"]["ticktext"] == ["adam", "sgd"]

    imp = client.get(f"/api/sweeps/{sid}/importance").json
    assert imp["n"] == 9 and {p["param"] for p in imp["params"]} == {"x", "opt.kind"}
    assert abs(sum(p["importance"] for p in imp["params"]) - 1.0) < 1e-6
    assert imp["params"][0]["param"] == "x"  # the metric depends on x only

    best = client.get(f"/api/sweeps/{sid}/best").json
    assert best == json.loads(json.dumps(store.best(sid)))
    assert set(best) == {"run_id", "value", "params"}
    assert client.get(f"/api/sweeps/{sid}/config").json["method"] == "random"


def test_importance_needs_enough_runs(client, store: Store) -> None:  # noqa: ANN001
    sid = make_sweep(store)
    r = client.get(f"/api/sweeps/{sid}/importance").json
    assert r["params"] == [] and "at least" in r["note"]


def test_workers_endpoint(client, store: Store) -> None:  # noqa: ANN001
    store.register_worker("w1@host", 2, ["sweepq"])
    [w] = client.get("/api/workers").json
    assert w["name"] == "w1@host" and w["slots"] == 2


# -- auth ---------------------------------------------------------------------------------------
def test_token_required_on_every_api_call(store: Store) -> None:
    from sweepq.web import create_app

    c = create_app(store, {"api_token": "s3cret"}).test_client()
    sid = make_sweep(store)
    calls = [
        ("get", "/api/sweeps"),
        ("post", "/api/sweeps"),
        ("get", f"/api/sweeps/{sid}"),
        ("get", f"/api/sweeps/{sid}/runs"),
        ("post", f"/api/sweeps/{sid}/pause"),
        ("get", "/api/openapi.json"),
        ("get", "/api/nosuch"),
        ("get", "/metrics"),
    ]
    for method, path in calls:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
            r = getattr(c, method)(path, headers=headers)
            assert r.status_code == 401, (method, path, headers)
            assert r.is_json and "token" in r.json["error"]
    ok = {"Authorization": "Bearer s3cret"}
    assert c.get("/api/sweeps", headers=ok).status_code == 200
    assert c.get(f"/api/sweeps/{sid}", headers=ok).json["id"] == sid
    assert c.post(f"/api/sweeps/{sid}/pause", headers=ok).json["state"] == "paused"
    assert c.get("/metrics", headers=ok).status_code == 200
    # the page shell and health need no token (the page asks for it, then calls /api)
    assert c.get("/healthz").status_code == 200
    page = c.get("/")
    assert page.status_code == 200 and b'data-auth="required"' in page.data


def test_token_from_environment(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from sweepq.web import create_app

    monkeypatch.setenv("SWEEPQ_API_TOKEN", "envtok")
    c = create_app(store).test_client()
    assert c.get("/api/sweeps").status_code == 401
    assert c.get("/api/sweeps", headers={"Authorization": "Bearer envtok"}).status_code == 200


# -- OpenAPI, metrics, dashboard --------------------------------------------------------------
def test_openapi(client) -> None:  # noqa: ANN001
    spec = client.get("/api/openapi.json").json
    assert spec["openapi"].startswith("3.")
    for path in (
        "/api/sweeps",
        "/api/sweeps/{id}",
        "/api/sweeps/{id}/runs",
        "/api/sweeps/{id}/runs/{run_id}",
        "/api/sweeps/{id}/pause",
        "/api/sweeps/{id}/resume",
        "/api/sweeps/{id}/stop",
        "/api/sweeps/{id}/cancel",
        "/healthz",
        "/metrics",
    ):
        assert path in spec["paths"], path
    assert set(RUN_KEYS) <= set(spec["components"]["schemas"]["Run"]["required"])
    assert set(spec["components"]["schemas"]["Status"]["required"]) >= STATUS_KEYS
    # every $ref resolves
    text = json.dumps(spec)
    for ref in re.findall(r'"\$ref": "#/components/schemas/(\w+)"', text):
        assert ref in spec["components"]["schemas"]


def _metric(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', head))
        if all(got.get(k) == v for k, v in (labels or {}).items()):
            return float(value)
    raise AssertionError(f"{name} {labels} not in metrics:\n{text[:3000]}")


def test_metrics(client, store: Store) -> None:  # noqa: ANN001
    sid, tids = populated(store)
    store.register_worker("w1@host", 3, ["sweepq"])
    store._r.lpush(store.keys.celery_prefix + "sweepq", "{}", "{}")
    # an early stop: the controller's request, then the worker's end
    running = tids[-2]
    store.request_stop(sid, running, "stop")
    time.sleep(0.05)
    owner = store._r.hget(store.keys.trial(running), "owner")
    store.finish_trial(sid, running, owner, "stopped", -15)

    class FakeController:
        stats = {"suggest_s": [0.002, 0.03, 0.4]}

    from sweepq.web import create_app

    c = create_app(store, {"controllers": [FakeController()]}).test_client()
    r = c.get("/metrics")
    assert r.status_code == 200 and r.mimetype == "text/plain"
    text = r.data.decode()
    assert _metric(text, "sweepq_trials", {"sweep": sid, "state": "finished"}) == 9
    assert _metric(text, "sweepq_trials", {"sweep": sid, "state": "failed"}) == 1
    assert _metric(text, "sweepq_trials", {"sweep": sid, "state": "stopped"}) == 1
    assert _metric(text, "sweepq_trials", {"sweep": sid, "state": "queued"}) == 1
    assert _metric(text, "sweepq_sweeps", {"state": "running"}) == 1
    assert _metric(text, "sweepq_queue_depth", {"queue": "sweepq"}) == 2
    assert _metric(text, "sweepq_workers_alive") == 1
    assert _metric(text, "sweepq_worker_slots") == 3
    assert _metric(text, "sweepq_suggest_seconds_count") == 3
    assert _metric(text, "sweepq_suggest_seconds_bucket", {"le": "0.05"}) == 2
    assert _metric(text, "sweepq_stop_latency_seconds_count", {"sweep": sid}) == 1
    assert 0 < _metric(text, "sweepq_stop_latency_seconds_sum", {"sweep": sid}) < 5
    assert _metric(text, "sweepq_queue_wait_seconds_count", {"sweep": sid}) == 11


def test_dashboard_assets_are_local(client) -> None:  # noqa: ANN001
    page = client.get("/")
    assert page.status_code == 200
    html = page.data.decode()
    srcs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/app.js" in srcs and "/static/app.css" in srcs
    assert 'data-plotly-src="/vendor/plotly.min.js"' in html  # loaded by app.js on sweep pages
    external = [s for s in srcs if s.startswith(("http:", "https:", "//")) and "127.0.0.1:5555" not in s]
    assert external == []  # only the Flower link (a link, not a load) points elsewhere
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    js = client.get("/vendor/plotly.min.js")
    assert js.status_code == 200 and js.mimetype == "text/javascript" and len(js.get_data()) > 1_000_000
    js.close()
    app_js = client.get("/static/app.js")
    assert app_js.status_code == 200
    assert b"innerHTML" not in app_js.get_data() and b"outerHTML" not in app_js.get_data()
    app_js.close()


def test_flower_url_setting(store: Store) -> None:
    from sweepq.web import create_app

    c = create_app(store, {"flower_url": "http://flower.internal:5555"}).test_client()
    assert b'data-flower-url="http://flower.internal:5555"' in c.get("/").data


def test_web_command_is_registered() -> None:
    from click.testing import CliRunner

    from sweepq.cli import main

    r = CliRunner().invoke(main, ["web", "--help"])
    assert r.exit_code == 0 and "--port" in r.output and "--host" in r.output


def test_static_files_exist() -> None:
    static = Path(__file__).resolve().parents[2] / "sweepq" / "web" / "static"
    assert (static / "app.js").is_file() and (static / "app.css").is_file()


def test_dashboard_reads_match_the_store_records(store: Store) -> None:
    """The dashboard reads thousands of trials with one script call per chunk; the records must
    equal what the store's full read of each trial gives."""
    sid, tids = populated(store)
    fast = dict(store.read_trial_records(sid, ranks=(0, len(tids) - 1)))
    assert dict(store.read_trial_records(sid, tids=tids)) == fast
    for t in store.get_trials(tids, history=False):
        got = fast[t["id"]]
        # the store may grow record fields; what the API answers must stay identical
        assert Store.run_json(got) == Store.run_json(t)
        for k in ("n", "sweep", "queued_at", "stop", "queue"):
            assert got[k] == t[k], k
        s, e = t["started_at"], t["ended_at"]
        assert got["duration"] == (e - s if s is not None and e is not None else None)


def test_cross_site_writes_are_refused(client, store: Store) -> None:  # noqa: ANN001
    """A page on another site cannot create or cancel sweeps on a local sweepq (CSRF)."""
    sid = make_sweep(store)
    evil = {"Origin": "http://evil.example"}
    r = client.post("/api/sweeps", data=YAML, content_type="text/plain", headers=evil)
    assert r.status_code == 403 and len(store.list_sweeps()) == 1
    assert (
        client.post(f"/api/sweeps/{sid}/cancel", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    )
    assert store.sweep_state(sid) == "running"
    assert client.get("/api/sweeps", headers=evil).status_code == 200  # reads are harmless
    same = {"Origin": "http://localhost"}  # the test client's Host
    assert client.post(f"/api/sweeps/{sid}/pause", headers=same).json["state"] == "paused"


def test_allowed_hosts(store: Store) -> None:
    from sweepq.web import create_app

    c = create_app(store, {"allowed_hosts": ["127.0.0.1", "localhost"]}).test_client()
    assert c.get("/api/sweeps").status_code == 200
    assert c.get("/api/sweeps", headers={"Host": "127.0.0.1:8080"}).status_code == 200
    r = c.get("/api/sweeps", headers={"Host": "rebind.evil.example:8080"})
    assert r.status_code == 421


def test_deleted_sweep_is_404_after_caching(client, store: Store) -> None:  # noqa: ANN001
    sid = make_sweep(store)
    store.create_trials(sid, [{"x": 0.5}])
    assert len(client.get(f"/api/sweeps/{sid}/runs").json) == 1
    store.delete_namespace()
    time.sleep(0.25)
    assert client.get(f"/api/sweeps/{sid}/runs").status_code == 404


def test_huge_body_is_413(client, store: Store) -> None:  # noqa: ANN001
    r = client.post("/api/sweeps", data="a: " + "x" * (2 << 20), content_type="application/yaml")
    assert r.status_code == 413 and r.is_json
    assert store.list_sweeps() == []


def test_sweep_without_metric(client, store: Store) -> None:  # noqa: ANN001
    from sweepq.config import load_config

    sid = store.create_sweep(
        load_config("method: grid\nparameters:\n  a: {values: [1, 2, 3]}\nprogram: t.py\n")
    )
    tids = store.create_trials(sid, [{"a": 1}, {"a": 2}])
    run_trial(store, sid, tids[0], [])
    assert client.get(f"/api/sweeps/{sid}").json["metric"]["name"] is None
    assert len(client.get(f"/api/sweeps/{sid}/runs?sort=-metric").json) == 2
    assert client.get(f"/api/sweeps/{sid}/curves").json["runs"] == []
    assert client.get(f"/api/sweeps/{sid}/parallel").json["ids"] == []
    assert client.get(f"/api/sweeps/{sid}/importance").json["params"] == []
    assert client.get(f"/api/sweeps/{sid}/best").status_code == 404


def test_web_command_busy_port_is_one_line_error(store: Store) -> None:
    import socket

    from click.testing import CliRunner

    from sweepq.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = CliRunner().invoke(main, ["web", "--port", str(port)])
    assert r.exit_code == 2, r.output
    assert "cannot listen on 127.0.0.1" in r.output and "Traceback" not in r.output


# -- edges: ids, deep bodies, every exception as JSON --------------------------------
class _NoRedis:
    """Stands in for the store's Redis client: any use fails the test (the view would 500)."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"Redis reached ({name})")


BAD_SWEEP_IDS = ["ABC", "a:b", "%2A", "x" * 65, "a%20b", "a-1", "%C3%A9t%C3%A9", "..", "a%0Ab"]


@pytest.mark.parametrize("bad", BAD_SWEEP_IDS)
def test_bad_sweep_ids_are_400_before_redis(client, store: Store, monkeypatch, bad: str) -> None:  # noqa: ANN001
    monkeypatch.setattr(store, "_r", _NoRedis())
    gets = ["", "/runs", "/runs/abc-1", "/config", "/curves", "/parallel", "/importance", "/best"]
    for method, path in [("get", p) for p in gets] + [("post", f"/{a}") for a in ("pause", "cancel")]:
        r = getattr(client, method)(f"/api/sweeps/{bad}{path}")
        assert r.status_code == 400, (path, r.status_code, r.get_data(as_text=True)[:200])
        assert r.is_json and r.json["error"].startswith("not a sweep id:") and "\n" not in r.json["error"]


@pytest.mark.parametrize(
    "bad", ["abc", "abc-", "abc-x", "ABC-1", "a:b-1", "abc-1-2", "abc-%2A", "abc-" + "9" * 19]
)
def test_bad_run_ids_are_400_before_redis(client, store: Store, monkeypatch, bad: str) -> None:  # noqa: ANN001
    monkeypatch.setattr(store, "_r", _NoRedis())
    r = client.get(f"/api/sweeps/abc/runs/{bad}")
    assert r.status_code == 400 and r.json["error"].startswith("not a run id:"), r.get_data(as_text=True)[
        :200
    ]


@pytest.mark.parametrize("body", ["[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000])
def test_deeply_nested_json_is_400(client, store: Store, body: str) -> None:  # noqa: ANN001
    r = client.post("/api/sweeps", data=body, content_type="application/json")
    assert r.status_code == 400 and r.is_json
    assert any("nested deeper than" in e for e in r.json["errors"]), r.json
    r = client.post("/api/validate", data=body, content_type="application/json")
    assert r.status_code == 200 and r.json["ok"] is False and "nested deeper than" in r.json["errors"][0]
    assert store.list_sweeps() == []


def test_unexpected_exception_is_json_500_without_traceback(client, store: Store, monkeypatch) -> None:  # noqa: ANN001
    sid = make_sweep(store)

    def boom(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("secret internals at /srv/x.py line 3")

    monkeypatch.setattr(store, "status", boom)
    r = client.get(f"/api/sweeps/{sid}")
    assert r.status_code == 500 and r.is_json
    assert r.json == {"error": "internal error (RuntimeError); the server log has the details"}


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (redis.exceptions.ResponseError("OOM command not allowed when used memory > 'maxmemory'."), "memory"),
        (redis.exceptions.ReadOnlyError("You can't write against a read only replica."), "replica"),
        (
            redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
            "Connection refused",
        ),
    ],
    ids=["oom", "readonly", "unreachable"],
)
def test_redis_errors_are_json_503(client, store: Store, monkeypatch, error: Exception, cause: str) -> None:  # noqa: ANN001
    sid = make_sweep(store)

    def fail(*_a: Any, **_k: Any) -> None:
        raise error

    monkeypatch.setattr(store, "list_sweeps", fail)
    monkeypatch.setattr(store, "sweep_action", fail)
    for r in (client.get("/api/sweeps"), client.post(f"/api/sweeps/{sid}/pause")):
        assert r.status_code == 503 and r.is_json, r.get_data(as_text=True)[:200]
        assert cause in r.json["error"] and "\n" not in r.json["error"], r.json


def test_http_errors_keep_their_status_as_json_under_api(app, client) -> None:  # noqa: ANN001
    from flask import abort

    app.add_url_rule("/api/teapot", "teapot", lambda: abort(418))
    app.add_url_rule("/teapot", "teapot_page", lambda: abort(418))
    r = client.get("/api/teapot")
    assert r.status_code == 418 and r.is_json and r.json["error"]
    r = client.get("/teapot")  # outside /api: werkzeug's own page, as before
    assert r.status_code == 418 and not r.is_json
