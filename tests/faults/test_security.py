"""Security: workers accept JSON only. A pickled message (which would run code when unpickled)
is refused, dropped, and the worker keeps serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.faults.conftest import check_sweep, describe, make_config, sweep_done

pytestmark = [pytest.mark.redis, pytest.mark.faults]


class _Exploit:
    """Unpickling this calls ``open(path, "w")``: the marker file appears if anyone unpickles it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.path, "w"))


def _attacker_app(url: str, namespace: str) -> Any:
    from celery import Celery

    from sweepq.dispatch import celery_config
    from sweepq.settings import Settings

    app = Celery("attacker", broker=url, set_as_current=False)
    app.conf.update(celery_config(Settings.from_env(), namespace))
    return app


def test_pickled_message_refused_worker_healthy(
    store,
    start_worker,
    controller,
    redis_server,
    namespace,  # noqa: ANN001
    tmp_path: Path,
    rec_dir,
):
    import pickle

    marker = tmp_path / "pwned"
    assert pickle.loads(pickle.dumps(_Exploit(str(marker)))) is not None and marker.exists()  # it works
    marker.unlink()

    w = start_worker(concurrency=1, env={"SWEEPQ_TEST_RECORD": str(rec_dir)})
    app = _attacker_app(redis_server, namespace)
    with app.connection_for_write() as conn:
        app.send_task(
            "sweepq.run_trial",
            args=[_Exploit(str(marker)), "x-1"],
            queue="sweepq",
            serializer="pickle",
            connection=conn,
        )
        # and one the worker may decode, for an unknown sweep: a defined no-op
        app.send_task(
            "sweepq.run_trial", args=["nosuchsweep", "nosuchsweep-1"], queue="sweepq", connection=conn
        )
    wait_for(
        lambda: "ContentDisallowed" in w.output() or "Refusing" in w.output(),
        30,
        what="the worker to refuse the pickled message",
        info=lambda: w.output()[-3000:],
    )
    wait_for(lambda: "'missing'" in w.output(), 30, what="the JSON message for an unknown sweep")
    assert not marker.exists(), "a pickled Celery message was deserialized"
    assert w.proc.poll() is None, "the worker died"
    queue_key = f"{store.keys.celery_prefix}sweepq"
    assert store._r.llen(queue_key) == 0, "the refused message was left in the queue"

    # the same worker still runs a sweep to its end
    sid = store.create_sweep(make_config(run_cap=3))
    controller()
    wait_for(lambda: sweep_done(store, sid), 60, what="sweep end", info=lambda: describe(store, sid))
    check_sweep(store, sid, rec_dir, expect={"finished": 3}, n_trials=3)
    assert not marker.exists()


def test_worker_config_is_json_only() -> None:
    from sweepq.dispatch import celery_config
    from sweepq.settings import Settings

    cfg = celery_config(Settings(), "x")
    assert cfg["accept_content"] == ["json"] and cfg["result_accept_content"] == ["json"]
    assert cfg["task_serializer"] == cfg["result_serializer"] == cfg["event_serializer"] == "json"
