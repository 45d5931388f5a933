"""Configs from outside are checked in full at every entry: a dict carrying sweepq's
old internal marker ``_normalised: true`` gets no trust, through HTTP, the Python API and the
engine. (Config files given to the CLI are read as text, which never carried trust.)"""

from __future__ import annotations

import json

import pytest

import sweepq
from sweepq import engine
from sweepq.config import ConfigError, load_config

pytestmark = pytest.mark.redis


def forged(**over) -> dict:
    """A normalised config in its JSON form (what the engine relies on is all there) that claims
    the marker, with one field set to something sweepq must refuse."""
    cfg = json.loads(
        json.dumps(
            load_config(
                {
                    "method": "random",
                    "metric": {"name": "loss"},
                    "program": "train.py",
                    "parameters": {"lr": {"min": 0.001, "max": 0.1}},
                }
            )
        )
    )
    cfg.update(over, _normalised=True)
    return cfg


FORGED = [  # (fields, the key path the error must name)
    ({"parameters": {"lr": {"distribution": "uniform", "min": 2.0, "max": 1.0}}}, "parameters.lr.min"),
    ({"run_cap": -7}, "run_cap"),
    ({"queue": "bad queue!!"}, "queue"),
    ({"parameters": {"<b>x</b>": {"distribution": "constant", "value": 1}}}, "parameters.<b>x</b>"),
    ({"method": "grid"}, "parameters.lr"),
    ({"max_concurrent": "abc"}, "max_concurrent"),
]
IDS = ["min>max", "run_cap", "queue", "markup-name", "grid-uniform", "max_concurrent"]


@pytest.fixture
def client(store):  # noqa: ANN001, ANN201
    from sweepq.web import create_app

    return create_app(store, {"api_token": None}).test_client()


@pytest.mark.parametrize(("over", "path"), FORGED, ids=IDS)
def test_http_refuses_forged_configs(client, store, over, path) -> None:  # noqa: ANN001
    body = forged(**over)
    for send in (
        {"json": body},
        {"json": {"config": body}},
        {"data": json.dumps(body), "content_type": "application/yaml"},
    ):
        r = client.post("/api/sweeps", **send)
        assert r.status_code == 400, r.json
        assert any(e.startswith(f"{path}:") for e in r.json["errors"]), r.json
    r = client.post("/api/validate", json=body)
    assert r.status_code == 200 and r.json["ok"] is False
    assert any(e.startswith(f"{path}:") for e in r.json["errors"])
    assert store.list_sweeps() == []


def test_http_stores_a_checked_config_without_the_marker(client, store) -> None:  # noqa: ANN001
    r = client.post("/api/sweeps", json=forged())
    assert r.status_code == 201, r.json
    assert any(w.startswith("_normalised:") for w in r.json["warnings"])
    assert "_normalised" not in store.sweep_config(r.json["id"])
    r = client.post("/api/sweeps", json={**forged(), "_owner": "x"})
    assert r.status_code == 400 and any(e.startswith("_owner:") for e in r.json["errors"])


@pytest.mark.parametrize(("over", "path"), FORGED, ids=IDS)
def test_python_api_and_engine_refuse_forged_configs(store, over, path) -> None:  # noqa: ANN001
    cfg = forged(**over)
    for call in (lambda: sweepq.sweep(cfg), lambda: engine.suggest(cfg, []), lambda: engine.to_stop(cfg, [])):
        with pytest.raises(ConfigError) as info:
            call()
        assert any(e.startswith(f"{path}:") for e in info.value.errors), info.value.errors
    assert store.list_sweeps() == []


def test_python_api_checks_a_changed_normalised_config(store) -> None:  # noqa: ANN001
    cfg = load_config({"method": "random", "parameters": {"lr": {"min": 0.001, "max": 0.1}}})
    cfg["run_cap"] = -7  # load_config's own output, changed afterwards
    with pytest.raises(ConfigError, match="run_cap"):
        sweepq.sweep(cfg)
    assert store.list_sweeps() == []
