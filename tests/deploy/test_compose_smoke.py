"""The compose stack for real: ``scripts/compose_smoke.sh`` on a private Docker engine.

The script is the test (its header lists every step and check): it installs what is missing
(Debian's docker.io, compose v2, mmdebstrap), builds the images from this checkout, brings the
stack up with the variables the README documents, sends the quickstart sweep from this host
with ``sweepq sweep`` as the README says, checks health, auth and who ran the trials, and takes
everything down again. Its output is streamed to the terminal, since a cold run takes minutes;
leave it out with ``-m "not compose"``. It needs root and Debian's archive and PyPI: where they
are missing, it fails saying so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "compose_smoke.sh"


@pytest.mark.compose
@pytest.mark.timeout(1800)
def test_compose_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    # the venv running this test provides `sweepq` and the Python the script checks with
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    tail: deque[str] = deque(maxlen=80)
    with capsys.disabled():
        print(f"\n{SCRIPT.relative_to(ROOT)}:", flush=True)
        proc = subprocess.Popen(
            ["bash", str(SCRIPT)],
            cwd=str(ROOT),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                tail.append(line)
                print(line, end="", flush=True)
            rc = proc.wait()
        finally:
            if proc.poll() is None:  # the test was interrupted: the script's trap takes it all down
                proc.terminate()
                proc.wait(180)
    assert rc == 0, f"{SCRIPT.name} exited {rc}:\n{''.join(tail)}"
