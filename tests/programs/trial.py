"""Test training program: reports a metric per step, records its life for overlap checks.

Arguments (all optional, `--k=v` as sweepq's ${args} renders them):
  --x          the parameter the metric depends on (loss = (x - 0.3)^2 + 1/(step+1))
  --steps      steps to log (default 3)
  --sleep      seconds per step (default 0.05)
  --exit       exit code at the end (default 0)
  --ignore_term  if True, ignore SIGTERM
  --rerun_steps  steps to log instead of --steps when an earlier attempt of this run left a
                 record (a re-run resumes, as from a checkpoint)
If the file named by SWEEPQ_TEST_SLOW_FILE exists when it starts, every step takes 5 s.
Writes `<SWEEPQ_TEST_RECORD>/<run_id>.<pid>.json` with start/end times, pid and GPUs.
"""

import json
import os
import signal
import sys
import time

args = {}
for a in sys.argv[1:]:
    if a.startswith("--") and "=" in a:
        k, v = a[2:].split("=", 1)
        args[k] = v
x = float(args.get("x", 0.5))
steps = int(float(args.get("steps", 3)))
sleep = float(args.get("sleep", 0.05))
code = int(float(args.get("exit", 0)))
if os.path.exists(os.environ.get("SWEEPQ_TEST_SLOW_FILE") or "/nonexistent/"):
    sleep = 5.0
if args.get("ignore_term") == "True":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

rec_dir = os.environ.get("SWEEPQ_TEST_RECORD")
run_id = os.environ.get("SWEEPQ_RUN_ID", "standalone")
if (
    "rerun_steps" in args
    and rec_dir
    and any(n.startswith(f"{run_id}.") and n.endswith(".json") for n in os.listdir(rec_dir))
):
    steps = int(float(args["rerun_steps"]))
rec = {
    "run": run_id,
    "pid": os.getpid(),
    "pgid": os.getpgid(0),
    "start": time.time(),
    "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
    "argv": sys.argv[1:],
    "end": None,
}


def save() -> None:
    if rec_dir:
        path = os.path.join(rec_dir, f"{run_id}.{os.getpid()}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(rec, f)
        os.replace(path + ".tmp", path)


save()
for step in range(steps):
    loss = (x - 0.3) ** 2 + 1.0 / (step + 1)
    print(f"@sweepq {json.dumps({'loss': loss, 'step': step})}", flush=True)
    print(f"ordinary output at step {step}", flush=True)
    time.sleep(sleep)
if code:
    print(f"failing on purpose with exit code {code}", file=sys.stderr, flush=True)
rec["end"] = time.time()
save()
sys.exit(code)
