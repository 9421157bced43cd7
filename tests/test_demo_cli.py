"""`daisybot demo` from a shell: it starts, prints its URL, serves the page, and Ctrl-C stops it
cleanly — exit 0, no traceback, the port closed, no process left behind."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bot.__main__ import build_parser

ROOT = Path(__file__).resolve().parent.parent
URL_RE = re.compile(rb"http://127\.0\.0\.1:(\d+)")
START_TIMEOUT = 60.0  # importing aiogram takes seconds on a cold, busy machine
STOP_TIMEOUT = 20.0


def _has_demo_subcommand() -> bool:
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            build_parser().parse_args(["demo", "--port", "0"])
    except SystemExit:
        return False
    return True


def _run_until_interrupted(command: list[str], tmp_path: Path, sig: signal.Signals) -> None:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(ROOT),
        # A developer's real settings must not matter to the demo.
        "BOT_TOKEN": "",
        "DAISYSIM_API_KEY": "should-not-be-used",
    }
    stdout_path, stderr_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        # Its own session: every process it might start is in one group we can look for later.
        child = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=out, stderr=err, start_new_session=True
        )
        try:
            port = _wait_for_url(child, stdout_path)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
                assert response.status == 200
                assert b"/static/app.js" in response.read()
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/api/state", timeout=10
            ) as response:
                assert b'"Alice"' in response.read()
            child.send_signal(sig)
            code = child.wait(timeout=STOP_TIMEOUT)
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
    stdout, stderr = stdout_path.read_bytes(), stderr_path.read_bytes()
    assert code in (0, 130), (code, stdout, stderr)
    assert b"Traceback" not in stdout + stderr, stderr.decode()
    assert b"Demo stopped." in stdout
    with pytest.raises(ProcessLookupError):
        os.killpg(child.pid, 0)  # nothing is left in its process group
    with socket.socket() as probe:
        probe.settimeout(2)
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the port is still open"
    # The sandbox mode play money, not the developer's DaisySim key: nothing was written here.
    assert not (tmp_path / "data").exists()


def _wait_for_url(child: subprocess.Popen[bytes], stdout_path: Path) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        match = URL_RE.search(stdout_path.read_bytes())
        if match is not None:
            return int(match.group(1))
        if child.poll() is not None:
            raise AssertionError(f"the demo exited with {child.returncode} before serving")
        # Polling a file the child writes: there is no event to wait on across processes.
        time.sleep(0.1)
    raise AssertionError(f"no URL printed within {START_TIMEOUT}s")


def test_python_m_bot_demo_starts_serves_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    if not _has_demo_subcommand():
        pytest.skip("bot/__main__.py has no `demo` subcommand yet (the lead hooks bot.demo.cli)")
    _run_until_interrupted(
        [sys.executable, "-m", "bot", "demo", "--port", "0"], tmp_path, signal.SIGINT
    )


def test_sigterm_stops_the_module_entry_point_as_cleanly(tmp_path: Path) -> None:
    # `python -m bot.demo` is the same CLI; SIGTERM is what docker stop and systemd send.
    _run_until_interrupted(
        [sys.executable, "-m", "bot.demo", "--port", "0", "--log-level", "WARNING"],
        tmp_path,
        signal.SIGTERM,
    )


def test_a_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "bot.demo", "--port", str(port), "--log-level", "ERROR"],
            cwd=tmp_path,
            capture_output=True,
            timeout=START_TIMEOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    assert result.returncode == 1
    assert b"Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{port}".encode() in result.stderr
