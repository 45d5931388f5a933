#!/usr/bin/env bash
# The one GPU check (run on a machine with a real NVIDIA GPU, see docs/deploy.md):
# a real PyTorch sweep through a sweepq worker with GPU pinning, on the embedded store.
# 1) auto-detected GPUs (nvidia-smi -L), one trial per GPU;
# 2) two worker slots forced onto one GPU: the GPU lock must serialise them (never two on a GPU).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 SWEEPQ_DEFAULT_REDIS_URL=redis://127.0.0.1:1/0
nvidia-smi -L | tee "$OUT/nvidia-smi.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available(), torch.cuda.device_count())"
rm -rf .sweepq
python3 -m sweepq.cli run configs/gpu/sweep.yaml --embedded --json > "$OUT/run1.json" 2> "$OUT/run1.err"; echo "run1 rc=$?"
SID=$(python3 -c "import json;print(json.load(open('$OUT/run1.json'))['id'])")
python3 -m sweepq.cli runs "$SID" --json > "$OUT/runs1.json"
SWEEPQ_GPUS=0 python3 -m sweepq.cli run configs/gpu/sweep.yaml --embedded --new --workers 2 --json > "$OUT/run2.json" 2> "$OUT/run2.err"; echo "run2 rc=$?"
SID2=$(python3 -c "import json;print(json.load(open('$OUT/run2.json'))['id'])")
python3 -m sweepq.cli runs "$SID2" --json > "$OUT/runs2.json"
cp .sweepq/logs/*-1.log "$OUT/trial-log-sample.txt" 2>/dev/null
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
for n in (1, 2):
    st = json.load(open(f"{out}/run{n}.json")); runs = json.load(open(f"{out}/runs{n}.json"))
    print(f"run{n}: state={st['state']} counts={st['counts']} best={st['best']}")
    iv = sorted((r["started_at"], r["ended_at"], r["id"], r.get("gpus")) for r in runs if r["started_at"])
    overlaps = [(a[2], b[2]) for a, b in zip(iv, iv[1:]) if b[0] < a[1] and a[3] == b[3]]
    print(f"  gpus per trial: {sorted(set(r.get('gpus') for r in runs))}; overlapping on one GPU: {overlaps}")
    for r in runs:
        print(f"  {r['id']} {r['state']:<9} gpus={r.get('gpus')!r} loss={r['metric']} steps={r['steps']} "
              f"dur={(r['ended_at'] or 0) - (r['started_at'] or 0):.2f}s")
PY
