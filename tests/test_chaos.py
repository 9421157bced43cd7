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
