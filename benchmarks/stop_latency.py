"""How fast a stop decision lands: controller decision -> trial process gone.

Runs a hyperband sweep through the real loop (a Controller thread + a real `celery worker` on the
Redis at SWEEPQ_BENCH_REDIS_URL, default 127.0.0.1:6379/11, in a throw-away namespace). Each trial
logs its metric every 0.1 s until it is stopped; on SIGTERM it exits at once. For every stopped
trial we read `stop_requested_at` (written atomically with the stop request) and the trial's
process exit time (recorded by the program's SIGTERM handler), and print median / p95.

    python benchmarks/stop_latency.py [--trials 24] [--workers 4] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROGRAM = r"""
import json, os, signal, sys, time
x = float([a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--x=")][0])
out = os.path.join(os.environ["BENCH_DIR"], os.environ["SWEEPQ_RUN_ID"] + ".exit")
def bye(*_):
    with open(out, "w") as f:
        f.write(repr(time.time()))
    os._exit(0)
signal.signal(signal.SIGTERM, bye)
for step in range(200):
    print("@sweepq " + json.dumps({"loss": x + 1.0 / (step + 1)}), flush=True)
    time.sleep(0.1)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--json", type=Path, help="also write the raw latencies here")
    args = ap.parse_args()
    load_start = os.getloadavg()
    url = os.environ.get("SWEEPQ_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
    ns = f"bench-stop-{secrets.token_hex(3)}"
    tmp = Path(tempfile.mkdtemp(prefix="sweepq-stop-"))
    prog = tmp / "prog.py"
    prog.write_text(PROGRAM)
    env = {
        **os.environ,
        "SWEEPQ_REDIS_URL": url,
        "SWEEPQ_NAMESPACE": ns,
        "BENCH_DIR": str(tmp),
        "SWEEPQ_LOG_DIR": str(tmp / "logs"),
        "PYTHONPATH": str(ROOT),
    }
    os.environ.update({"SWEEPQ_REDIS_URL": url, "SWEEPQ_NAMESPACE": ns})
    from sweepq.config import load_config
    from sweepq.controller import Controller
    from sweepq.store import Store

    store = Store(url=url, namespace=ns)
    sid = store.create_sweep(
        load_config(
            {
                "method": "random",
                "program": str(prog),
                "run_cap": args.trials,
                "seed": 1,
                "command": ["${env}", sys.executable, "${program}", "${args}"],
                "metric": {"name": "loss"},
                "parameters": {"x": {"min": 0.0, "max": 10.0}},
                "early_terminate": {"type": "hyperband", "min_iter": 3, "eta": 3},
                "stop_grace": 10,
            }
        )
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "sweepq.worker",
            "worker",
            "-Q",
            "sweepq",
            "-c",
            str(args.workers),
            "-n",
            f"{ns}@bench",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "WARNING",
        ],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ctl = Controller(store, tick=0.2)
    th = threading.Thread(target=ctl.run, daemon=True)
    th.start()
    t0 = time.time()
    try:
        while sid in store.active_sweeps():
            time.sleep(0.5)
            if time.time() - t0 > 900:
                raise SystemExit("sweep did not finish in 15 minutes")
    finally:
        ctl.stop_event.set()
        th.join(5)
        os.killpg(worker.pid, signal.SIGQUIT)
        worker.wait(30)
    lat_exit, lat_end = [], []
    for tid in store.trial_ids(sid):
        h = store._r.hgetall(store.keys.trial(tid))
        if h.get("state") != "stopped" or not h.get("stop_requested_at"):
            continue
        req = float(h["stop_requested_at"])
        exit_file = tmp / f"{tid}.exit"
        if exit_file.exists():
            lat_exit.append(float(exit_file.read_text()) - req)
        lat_end.append(float(h["ended_at"]) - req)
    counts = store.counts(sid)
    store.delete_namespace()

    def fmt(xs: list[float]) -> str:
        if not xs:
            return "-"
        xs = sorted(xs)
        return f"{statistics.median(xs) * 1000:.0f} ms / {xs[int(0.95 * (len(xs) - 1))] * 1000:.0f} ms"

    one, five, fifteen = load_start
    print(
        f"trials {args.trials}, workers {args.workers}, stopped {counts['stopped']}, finished {counts['finished']}; "
        f"load average at start {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"
    )
    print("| measure | median / p95 |")
    print("|---|---|")
    print(f"| stop request -> trial process exits (SIGTERM handler ran) | {fmt(lat_exit)} |")
    print(f"| stop request -> trial recorded `stopped` in Redis | {fmt(lat_end)} |")
    print(json.dumps({"exit": lat_exit, "recorded": lat_end}), file=sys.stderr)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "benchmark": "stop_latency",
                    "trials": args.trials,
                    "workers": args.workers,
                    "stopped": counts["stopped"],
                    "finished": counts["finished"],
                    "load_start": load_start,
                    "load_end": os.getloadavg(),
                    "cpus": os.cpu_count(),
                    "exit_s": lat_exit,
                    "recorded_s": lat_end,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
