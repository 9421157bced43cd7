"""The sandbox from a shell (`python -m bot.sandbox`), its argument parsing and its JSON writer."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from bot.sandbox import serve
from bot.sandbox.cli import add_sandbox_arguments
from bot.sandbox.server import Sandbox
from bot.sandbox.wire import Usd, dumps

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 20.0


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_sandbox_arguments(parser)
    return parser.parse_args(list(argv))


def test_argument_defaults() -> None:
    args = parse()
    assert (args.host, args.port, args.time_scale) == ("127.0.0.1", 8787, 1.0)
    assert args.keys is None
    assert args.start_balance == 500_000
    assert args.auto_codes is None
    assert args.code_probability == 1.0


def test_argument_values() -> None:
    args = parse(
        "--port", "0", "--time-scale", "60", "--keys", "a, b,,", "--start-balance", "12.3456",
        "--auto-codes", "5-20", "--code-probability", "0.5",
    )  # fmt: skip
    assert args.port == 0
    assert args.time_scale == 60.0
    assert args.keys == ["a", "b"]
    assert args.start_balance == 123_456
    assert args.auto_codes == (5.0, 20.0)
    assert args.code_probability == 0.5
    assert parse("--auto-codes", "off").auto_codes is None
    assert parse("--auto-codes", "3").auto_codes == (3.0, 3.0)


@pytest.mark.parametrize(
    "argv",
    [
        ["--start-balance", "1.23456"],
        ["--start-balance", "-1"],
        ["--auto-codes", "20-5"],
        ["--auto-codes", "soon"],
        ["--time-scale", "0"],
        ["--code-probability", "2"],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(*argv)
    assert exited.value.code == 2
    assert "error" in capsys.readouterr().err


def test_wire_writes_money_with_four_decimals() -> None:
    assert dumps({"a": Usd(10_830), "b": [Usd(0), Usd(-5)], "c": None, "d": True}) == (
        '{"a":1.0830,"b":[0.0000,-0.0005],"c":null,"d":true}'
    )
    assert dumps({"s": '«тест» "q"'}) == '{"s":"«тест» \\"q\\""}'
    with pytest.raises(TypeError):
        dumps({"x": object()})
    with pytest.raises(TypeError):
        dumps({1: "non-string key"})


async def test_serve_runs_until_cancelled() -> None:
    ready: asyncio.Queue[Sandbox] = asyncio.Queue()
    task = asyncio.ensure_future(
        serve(
            "127.0.0.1",
            0,
            time_scale=60,
            keys=["k"],
            start_balance_units=10_000,
            auto_code_after=None,
            on_ready=ready.put_nowait,
        )
    )
    sandbox = await asyncio.wait_for(ready.get(), timeout=5)
    async with httpx.AsyncClient(headers={"Authorization": "Bearer k"}) as http:
        r = await http.get(f"{sandbox.base_url}/balance")
        assert r.json()["data"]["balance"] == 1.0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{sandbox.base_url}/balance")


@asynccontextmanager
async def cli_process(*argv: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.sandbox", *argv,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        base_url = ""
        while not base_url:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=STARTUP_TIMEOUT)
            assert line, "the sandbox exited before printing its URL"
            text = line.decode().strip()
            if text.startswith("DAISYSIM_BASE_URL="):
                base_url = text.partition("=")[2]
        yield proc, base_url
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
async def test_cli_serves_and_stops_cleanly(stop_signal: signal.Signals) -> None:
    argv = ("--port", "0", "--time-scale", "60", "--keys", "a,b", "--start-balance", "12.5",
            "--auto-codes", "0.05-0.1")  # fmt: skip
    async with cli_process(*argv) as (proc, base_url):
        assert base_url.endswith("/api/v1/server7")
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
            r = await http.get("/balance", headers={"Authorization": "Bearer a"})
            assert r.json()["data"]["balance"] == 12.5
            r = await http.get("/balance", headers={"Authorization": "Bearer c"})
            assert r.status_code == 401
        proc.send_signal(stop_signal)
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=10)
        assert proc.returncode == 0
        assert b"Traceback" not in stderr


async def test_cli_port_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.sandbox", "--port", str(port),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=STARTUP_TIMEOUT)
    assert proc.returncode == 1
    assert b"Traceback" not in stderr
    assert f"cannot listen on 127.0.0.1:{port}".encode() in stderr
