#!/usr/bin/env python3
"""One-command bootstrap: `python3 dev.py run` or `python3 dev.py test`.

Needs only Python 3.11+ with venv and pip. Creates `.venv` beside this file, installs the
project (with its test extra) into it when pyproject.toml changed, then runs the command.
Standard library only, because it runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".installed"


def ensure_venv() -> None:
    if not PY.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    print("installing dependencies into .venv ...", flush=True)
    subprocess.check_call([str(PY), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    subprocess.check_call([str(PY), "-m", "pip", "install", "-q", "-e", f"{ROOT}[test]"])
    STAMP.write_text(digest)


def main(argv: list[str]) -> int:
    # Bare `run`: the bot when BOT_TOKEN is configured, otherwise the demo web chat.
    command, rest = (argv[0], argv[1:]) if argv else ("run", [])
    if command == "run":
        command = "auto"
    ensure_venv()
    if command == "test":
        # The whole suite on two workers: most tests wait on loopback servers and scaled
        # clocks, not on the CPU, so two run side by side in about 3 instead of 6 minutes.
        # Two, not one per core: the timing assertions allow for one neighbour, and CI has
        # two cores. Given arguments (a file, -k, -x ...), pytest runs them as given.
        parallel = [] if rest else ["-n", "2", "--dist", "worksteal"]
        args = [str(PY), "-m", "pytest", *parallel, *rest]
    elif command == "lint":
        ruff = subprocess.call([str(PY), "-m", "ruff", "check", "."], cwd=ROOT)
        mypy = subprocess.call([str(PY), "-m", "mypy", "."], cwd=ROOT)
        layers = subprocess.call([str(BIN / "lint-imports")], cwd=ROOT)
        return ruff or mypy or layers
    else:
        # `auto`, `sandbox`, `demo`, `ledger-check`, ... are the bot's own subcommands.
        args = [str(PY), "-m", "bot", command, *rest]
    try:
        return subprocess.call(args, cwd=ROOT)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
