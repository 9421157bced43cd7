"""The chaos soak's short preset (`python -m bench.chaos --short`): the real bot as a process,
killed and restarted under upstream faults, must lose nothing and account for every order."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")


@pytest.mark.skip(
    reason=(
        "issue 13, still open: with the fixes merged the full preset (seed 1) passes 7 of 9 "
        "checks; 'every delivered code reached its user' (2 of 210 codes: activations left "
        "waiting with their code upstream after restarts) and 'zero upstream 429s but "
        "injected ones' (1 purchase 429 after a restart) still fail, and the short preset "
        "only sometimes lands in those windows; on in CI once both are fixed"
    )
)
def test_chaos_short_preset_loses_nothing() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--short"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = run.stdout.strip().splitlines()
    assert lines, run.stderr[-4000:]
    payload = json.loads(lines[-1])
    failed = [name for name, passed in payload["checks"].items() if not passed]
    assert failed == [], run.stdout
    assert payload["kills"] >= 1
    assert payload["codes_lost"] == 0
    assert payload["duplicates_without_crash"] == 0
    assert run.returncode == 0, run.stdout
