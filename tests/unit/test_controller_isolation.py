"""One bad sweep never stalls the others: a sweep whose pass raises ends ``failed`` with a
one-line reason (status, API), and every other sweep gets its trials in the same pass. Runs on
fakeredis (the store's Lua included); the stored configs are written as an older version or a
hand-made key could have left them."""

from __future__ import annotations

import json

import fakeredis
import pytest

from sweepq import engine
from sweepq.controller import Controller
from sweepq.store import Store
from tests.unit.test_controller import FakeWorkers, cfg


@pytest.fixture
def st() -> Store:
    return Store(client=fakeredis.FakeRedis(decode_responses=True), namespace="ut")


def _publish(sid: str, tid: str, queue: str, attempt: int) -> None:
    return None


def _corrupt(st: Store, sid: str, **bad: object) -> None:
    """Rewrite a stored config (the API could not make it: it validates in full)."""
    config = json.loads(st._r.hget(st.keys.sweep(sid), "config"))
    config.update(bad)
    st._r.hset(st.keys.sweep(sid), "config", json.dumps(config))


@pytest.mark.parametrize(
    "bad",
    [
        {"max_concurrent": "abc"},
        {"run_cap": -7},
        {"parameters": {"x": {"distribution": "uniform", "min": 2.0, "max": 1.0}}},
        {"method": "grid"},  # a grid over a uniform parameter
    ],
)
def test_a_sweep_with_a_broken_stored_config_fails_alone(st: Store, bad: dict) -> None:
    broken = st.create_sweep(cfg())
    _corrupt(st, broken, **bad)
    good = st.create_sweep(cfg())
    assert broken < good or broken > good  # whichever sorts first, the other still gets trials
    ctl = Controller(st, publish=_publish)
    ctl.step()
    assert st.n_trials(good) >= 1, "the healthy sweep got no trial in the pass that met the broken one"
    s = st.status(broken)
    assert s["state"] == "failed", s
    assert s["end_reason"].startswith("controller: ConfigError: ") and "\n" not in s["end_reason"], s
    ctl.step()  # the next pass retires it (nothing of it in flight)
    assert broken not in st.active_sweeps() and st.status(broken)["state"] == "failed"
    # and a cancel of the failed sweep is refused as of any ended sweep, not left active
    with pytest.raises(Exception, match="it is failed"):
        st.sweep_action(broken, "cancel")


def test_a_sweep_whose_engine_raises_fails_and_its_trials_stop(
    st: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = st.create_sweep(cfg(run_cap=20))
    good = st.create_sweep(cfg(run_cap=4))
    st.register_worker("w", 4, ["sweepq"])  # slots, so that each sweep wants several trials in flight
    ctl = Controller(st, publish=_publish)
    ctl.step()
    running = sorted(st.inflight_ids(broken))[0]
    assert st.claim(broken, running, "o", "w", 10).ok
    real = engine.suggest

    def suggest(config, trials, n=1, seed=None):  # noqa: ANN001, ANN202
        if config.get("run_cap") == 20:
            raise ZeroDivisionError("float division by zero")
        return real(config, trials, n, seed)

    monkeypatch.setattr(engine, "suggest", suggest)
    fw = FakeWorkers(st, good)
    for tid in sorted(st.inflight_ids(broken)):
        if tid != running:
            assert st.claim(broken, tid, "o", "w", 10).ok
            st.finish_trial(broken, tid, "o", "finished", 0)
    for _ in range(20):
        ctl.step()
        fw.work()
    assert st.status(good)["state"] == "finished" and st.counts(good)["finished"] == 4
    s = st.status(broken)
    assert (
        s["state"] == "failed" and s["end_reason"] == "controller: ZeroDivisionError: float division by zero"
    ), s
    # the running trial was told to stop (cancel), as a canceled sweep's are
    assert st.get_trial(running)["stop"] == "cancel"
    assert st.finish_trial(broken, running, "o", "canceled", -15)
    ctl.step()
    assert broken not in st.active_sweeps() and st.status(broken)["state"] == "failed"
