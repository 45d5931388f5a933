"""Server time of the dashboard's data with 10,000 trials (the sweep page polls every 2 s).

Usage::

    python benchmarks/web_latency.py [--trials 10000] [--repeat 30] [--redis redis://127.0.0.1:6379/9]
        [--json results.json]

Method: a fresh namespace gets one sweep with ``--trials`` finished trials (created with
``store.create_trials``, then their fields set directly in a pipeline: params, metric, times,
worker, exit code, a 200-byte log tail and 20 logged metric rows each). The Flask app is called
in-process through its test client, so the numbers are the server's own time (routing, Redis,
JSON) without the network. Reported per endpoint: the first call of a fresh app ("cold": it loads
every trial record) and the median / p90 of ``--repeat`` later calls ("warm"). "live" repeats the
sweep page's poll while 20 trials change between two polls (state, metric), which is what a
running sweep costs. The namespace is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sweepq.store import Store  # noqa: E402


def populate(store: Store, n: int) -> tuple[str, list[str]]:
    from sweepq.config import load_config

    cfg = load_config(
        {
            "method": "random",
            "program": "train.py",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {
                "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
                "layers": {"values": [1, 2, 3, 4]},
                "dropout": {"min": 0.0, "max": 0.5},
                "opt": {"parameters": {"kind": {"values": ["adam", "sgd", "rmsprop"]}}},
            },
        }
    )
    sid = store.create_sweep(cfg)
    rng = random.Random(0)
    tids: list[str] = []
    for i in range(0, n, 1000):
        params = [
            {
                "lr": 10 ** rng.uniform(-5, -1),
                "layers": rng.choice([1, 2, 3, 4]),
                "dropout": rng.uniform(0, 0.5),
                "opt": {"kind": rng.choice(["adam", "sgd", "rmsprop"])},
            }
            for _ in range(min(1000, n - i))
        ]
        tids += store.create_trials(sid, params)
    k = store.keys
    now = time.time()
    best = (None, float("inf"))
    p = store._r.pipeline(transaction=False)
    for j, tid in enumerate(tids):
        loss = rng.uniform(0.1, 2.0)
        if loss < best[1]:
            best = (tid, loss)
        start = now - 3600 + j * 0.3
        p.hset(
            k.trial(tid),
            mapping={
                "state": "finished",
                "metric": repr(loss),
                "steps": 20,
                "started_at": start,
                "ended_at": start + rng.uniform(10, 300),
                "worker": f"gpu{j % 16}@node{j % 4}",
                "exit_code": 0,
                "attempt": 1,
                "published": 1,
                "log_tail": ("epoch done, loss ok " * 10)[:200],
            },
        )
        p.rpush(
            k.trial_rows(tid),
            *[json.dumps({"loss": loss + (20 - s) * 0.05, "acc": 0.5, "_step": s}) for s in range(20)],
        )
        p.rpush(k.trial_history(tid), *[repr(loss + (20 - s) * 0.05) for s in range(20)])
        if j % 500 == 499:
            p.execute()
    p.hset(k.sweep_counts(sid), mapping={"queued": 0, "finished": n})
    p.hset(k.sweep(sid), mapping={"best_id": best[0], "best_value": repr(best[1])})
    p.execute()
    return sid, tids


def timed(client, url: str) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    r = client.get(url)
    dt = time.perf_counter() - t0
    assert r.status_code == 200, (url, r.status_code, r.get_data()[:300])
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--redis", default=os.environ.get("SWEEPQ_REDIS_URL", "redis://127.0.0.1:6379/9"))
    ap.add_argument("--json", type=Path, help="also write the raw timings here")
    args = ap.parse_args()
    load_start = os.getloadavg()

    from sweepq.web import create_app

    store = Store(url=args.redis, namespace=f"sqbench{random.randrange(16**6):06x}")
    try:
        t0 = time.perf_counter()
        sid, tids = populate(store, args.trials)
        print(f"populated {len(tids)} trials in {time.perf_counter() - t0:.1f} s (namespace {store.ns})")
        endpoints = {
            "status": f"/api/sweeps/{sid}",
            "runs page (50, newest first)": f"/api/sweeps/{sid}/runs?offset=0&limit=50&sort=-id",
            "runs page sorted by metric": f"/api/sweeps/{sid}/runs?offset=0&limit=50&sort=metric",
            "runs filtered+sorted, last page": f"/api/sweeps/{sid}/runs?state=finished&sort=-duration&offset=9950&limit=50",
            "curves (5 best runs)": f"/api/sweeps/{sid}/curves",
            "parallel coordinates (1000)": f"/api/sweeps/{sid}/parallel?limit=1000",
            "importance": f"/api/sweeps/{sid}/importance",
            "run detail": f"/api/sweeps/{sid}/runs/{tids[0]}?rows=0",
            "all runs, unpaged (CLI list)": f"/api/sweeps/{sid}/runs",
        }
        # cold: a fresh app per endpoint (nothing cached)
        cold = {}
        for name, url in endpoints.items():
            client = create_app(store, {"api_token": None}).test_client()
            cold[name] = timed(client, url)
        client = create_app(store, {"api_token": None}).test_client()
        for url in endpoints.values():
            timed(client, url)
        rows = []
        raw: dict[str, list[float]] = {}
        for name, url in endpoints.items():
            ts = []
            for _ in range(args.repeat):
                time.sleep(0.21)  # past the cache's refresh interval: every call checks Redis
                ts.append(timed(client, url))
            rows.append((name, cold[name], statistics.median(ts), sorted(ts)[int(0.9 * (len(ts) - 1))]))
            raw[name] = ts
        # the page's poll (status + runs page + curves) while 20 trials change between polls
        poll = [
            endpoints["status"],
            endpoints["runs page (50, newest first)"],
            endpoints["curves (5 best runs)"],
        ]
        owner_ts = []
        rng = random.Random(1)
        for i in range(args.repeat):
            for tid in rng.sample(tids, 20):  # through the events stream, as the store's scripts write
                store._r.hset(store.keys.trial(tid), "metric", repr(rng.uniform(0.1, 2)))
                store._r.xadd(store.keys.events, {"sweep": sid, "trial": tid, "kind": "metric"})
            time.sleep(0.21)
            owner_ts.append(sum(timed(client, u) for u in poll))
            _ = i
        steady = []
        for _ in range(args.repeat):
            time.sleep(0.21)
            steady.append(sum(timed(client, u) for u in poll))
        one, five, fifteen = load_start
        print(
            f"\n{args.trials} trials, {args.repeat} repeats, in-process (Flask test client), Redis {args.redis}; "
            f"load average at start {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs\n"
        )
        print("| endpoint | cold (first call) ms | warm median ms | warm p90 ms |")
        print("|---|---:|---:|---:|")
        for name, c, med, p90 in rows:
            print(f"| {name} | {c * 1000:.1f} | {med * 1000:.1f} | {p90 * 1000:.1f} |")
        print(
            f"| **sweep page poll** (status + runs page + curves), finished sweep | – | "
            f"{statistics.median(steady) * 1000:.1f} | {sorted(steady)[int(0.9 * (len(steady) - 1))] * 1000:.1f} |"
        )
        print(
            f"| **sweep page poll**, 20 trials changed since the last poll | – | "
            f"{statistics.median(owner_ts) * 1000:.1f} | {sorted(owner_ts)[int(0.9 * (len(owner_ts) - 1))] * 1000:.1f} |"
        )
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "benchmark": "web_latency",
                        "trials": args.trials,
                        "repeat": args.repeat,
                        "load_start": load_start,
                        "load_end": os.getloadavg(),
                        "cpus": os.cpu_count(),
                        "cold_s": cold,
                        "warm_s": raw,
                        "poll_finished_s": steady,
                        "poll_changed_s": owner_ts,
                    },
                    indent=1,
                )
            )
    finally:
        n = store.delete_namespace()
        print(f"\ndeleted {n} keys of namespace {store.ns}")


if __name__ == "__main__":
    main()
