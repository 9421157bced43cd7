"""The container: the Dockerfile, compose.yaml, the README and the code agree, and the
HEALTHCHECK's probe tells a running bot from a dead one.

No image is built here: on the machines this project is tested on no registry image can be
pulled and no container can run. What a build would take from these files is read from them
instead, and the probe runs as the HEALTHCHECK would run it, as a process of its own.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import socket
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot import healthcheck
from bot.config import CONTAINER_METRICS_PORT, DEFAULT_WEBHOOK_LISTEN, Settings
from bot.emulator import BotAPIEmulator
from tests.conftest import AppFactory

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
WEBHOOK_PORT = int(DEFAULT_WEBHOOK_LISTEN.rpartition(":")[2])


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int  # 0 before the first FROM

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form instruction (ENTRYPOINT ["daisybot"]; HEALTHCHECK's
        options come before it)."""
        if self.keyword == "HEALTHCHECK":
            assert " CMD [" in self.args, "HEALTHCHECK is not CMD in exec form"
        value = json.loads(self.args[self.args.index("[") :])
        assert isinstance(value, list), self
        return [str(v) for v in value]


def dockerfile() -> list[Instruction]:
    """Instructions in order, continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continuation"
    out: list[Instruction] = []
    stage = 0
    for text in logical:
        keyword, _, args = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, " ".join(args.split()), stage))
    return out


def final(keyword: str) -> list[Instruction]:
    """The instructions of the runtime (last) stage."""
    instructions = dockerfile()
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.keyword == keyword and i.stage == last]


def final_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in final("ENV"):
        for pair in shlex.split(instruction.args):
            name, _, value = pair.partition("=")
            env[name] = value
    return env


def compose() -> dict[str, Any]:
    with (ROOT / "compose.yaml").open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict)
    return data


def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)


def container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(p).rsplit(":", 1)[1].split("/")[0]) for p in service.get("ports", [])}


def readme_section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.M | re.S)
    assert match is not None, f"README has no '## {title}' section"
    return match.group(1)


# --- the Dockerfile -------------------------------------------------------------------------


def test_the_base_is_a_build_argument_defaulting_to_the_official_python_slim_image() -> None:
    instructions = dockerfile()
    first = instructions[0]
    assert (first.keyword, first.stage) == ("ARG", 0)
    assert first.args == "BASE=python:3.11-slim"
    requires = pyproject()["project"]["requires-python"]
    assert requires == ">=3.11"  # the image's Python is the oldest the project supports
    froms = [i.args for i in instructions if i.keyword == "FROM"]
    assert froms, "no FROM"
    assert all(f.split()[0] == "${BASE}" for f in froms), froms


def test_it_installs_the_project_with_pip() -> None:
    name = pyproject()["project"]["name"]
    runs = [i.args for i in final("RUN")]
    assert any(re.search(rf"\bpip install\b.*\b{re.escape(name)}\b", r) for r in runs), runs
    # The wheels come from the build stage, which builds them from the project itself.
    build_runs = [i.args for i in dockerfile() if i.keyword == "RUN" and i.stage == 1]
    assert any(re.search(r"\bpip wheel\b.* \.$", r) for r in build_runs), build_runs


def test_the_build_stage_copies_every_package_pyproject_ships() -> None:
    sources = {
        source
        for i in dockerfile()
        if i.keyword == "COPY" and i.stage == 1
        for source in i.args.split()[:-1]
    }
    includes = pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in includes:
        assert pattern.rstrip("*") in sources, (pattern, sources)
    for source in sources:
        assert (ROOT / source).exists(), source
    # pyproject's readme is read by the build.
    assert pyproject()["project"]["readme"] in sources


def test_it_runs_the_entry_point_the_readme_names() -> None:
    (entrypoint,) = final("ENTRYPOINT")
    (cmd,) = final("CMD")
    assert entrypoint.exec_form() == ["daisybot"]
    assert cmd.exec_form() == ["run"]
    assert pyproject()["project"]["scripts"]["daisybot"] == "bot.__main__:main"
    assert "`daisybot <command>`" in README
    assert "| `run` (default) |" in README
    section = readme_section("Container")
    assert "daisybot" in section


def test_it_runs_as_a_user_other_than_root() -> None:
    users = final("USER")
    assert users, "no USER: the bot would run as root"
    user = users[-1].args.split(":")[0]
    assert user not in {"root", "0"}
    runs = " ".join(i.args for i in final("RUN"))
    assert re.search(rf"\buseradd\b[^&]*\b{re.escape(user)}\b", runs), "the user is not created"
    # The database directory belongs to that user, or SQLite could not write its file there.
    assert re.search(rf"chown {user}:{user} /data\b", runs)


def test_the_database_is_on_the_volume() -> None:
    (volume,) = final("VOLUME")
    assert json.loads(volume.args) == ["/data"]
    env = final_env()
    assert Path(env["DATABASE_PATH"]).parent == Path("/data")
    assert Settings(_env_file=None, database_path=env["DATABASE_PATH"]).database_path == Path(
        env["DATABASE_PATH"]
    )


def test_it_exposes_the_webhook_and_metrics_ports_and_checks_healthz() -> None:
    (expose,) = final("EXPOSE")
    assert {int(p) for p in expose.args.split()} == {WEBHOOK_PORT, CONTAINER_METRICS_PORT}
    env = final_env()
    assert env["METRICS_LISTEN"] == f"0.0.0.0:{CONTAINER_METRICS_PORT}"
    (check,) = final("HEALTHCHECK")
    assert check.exec_form() == ["python", "-m", "bot.healthcheck"]
    # The probe asks the image's own METRICS_LISTEN for /healthz.
    assert healthcheck.health_urls(env) == [f"http://127.0.0.1:{CONTAINER_METRICS_PORT}/healthz"]
    assert healthcheck.HEALTH_PATH == "/healthz"


def test_the_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", ".venv", "data", ".git"} <= ignored


# --- compose.yaml ---------------------------------------------------------------------------


def test_compose_runs_the_bot_in_polling_and_in_webhook_mode() -> None:
    services = compose()["services"]
    assert set(services) == {"bot-polling", "bot-webhook"}
    polling, webhook = services["bot-polling"], services["bot-webhook"]
    assert polling["profiles"] == ["polling"]
    assert webhook["profiles"] == ["webhook"]
    assert polling["environment"]["WEBHOOK_URL"] == ""
    assert webhook["environment"]["WEBHOOK_LISTEN"] == f"0.0.0.0:{WEBHOOK_PORT}"
    assert "WEBHOOK_URL" not in webhook["environment"]  # from .env
    for service in (polling, webhook):
        assert service["env_file"] == ".env"
        assert service["build"]["context"] == "."
        assert service["build"]["args"]["BASE"] == "python:3.11-slim"
        assert service["stop_signal"] == "SIGTERM"


def test_compose_ports_volume_and_healthcheck_agree_with_the_dockerfile() -> None:
    data = compose()
    (expose,) = final("EXPOSE")
    exposed = {int(p) for p in expose.args.split()}
    (check,) = final("HEALTHCHECK")
    (volume,) = final("VOLUME")
    mount = json.loads(volume.args)[0]
    polling, webhook = data["services"]["bot-polling"], data["services"]["bot-webhook"]
    assert container_ports(polling) == {CONTAINER_METRICS_PORT}
    assert container_ports(webhook) == {WEBHOOK_PORT, CONTAINER_METRICS_PORT}
    assert container_ports(webhook) <= exposed
    for service in (polling, webhook):
        assert service["healthcheck"]["test"] == ["CMD", *check.exec_form()]
        assert service["volumes"] == [f"data:{mount}"]
        assert Path(service["environment"]["DATABASE_PATH"]).parent == Path(mount)
        assert service["environment"]["METRICS_LISTEN"] == final_env()["METRICS_LISTEN"]
        assert healthcheck.health_urls(service["environment"])
    assert "data" in data["volumes"]


def test_compose_lets_a_graceful_stop_finish_before_it_kills() -> None:
    from bot.app import DAISYSIM_TIMEOUT_SECONDS, UPSTREAM_STOP_MARGIN_SECONDS

    defaults = Settings(_env_file=None)
    needed = (
        defaults.shutdown_grace_seconds
        + DAISYSIM_TIMEOUT_SECONDS
        + UPSTREAM_STOP_MARGIN_SECONDS
        + defaults.outbox_flush_seconds
    )
    for service in compose()["services"].values():
        grace = service["stop_grace_period"]
        assert grace.endswith("s")
        assert float(grace[:-1]) >= needed, (grace, needed)


def test_the_readme_documents_what_the_files_say() -> None:
    section = readme_section("Container")
    for needed in (
        "docker compose --profile polling up",
        "docker compose --profile webhook up",
        "/data",
        "/healthz",
        str(WEBHOOK_PORT),
        str(CONTAINER_METRICS_PORT),
        "--build-arg BASE=",
    ):
        assert needed in section, needed
    stopping = readme_section("Stopping")
    for needed in ("SIGTERM", "SHUTDOWN_GRACE_SECONDS", "OUTBOX_FLUSH_SECONDS"):
        assert needed in stopping, needed


# --- the probe ------------------------------------------------------------------------------


def test_the_probe_asks_the_webhook_server_first_and_wildcards_on_loopback() -> None:
    assert healthcheck.health_urls({}) == []
    assert healthcheck.health_urls({"METRICS_LISTEN": "0.0.0.0:9100"}) == [
        "http://127.0.0.1:9100/healthz"
    ]
    assert healthcheck.health_urls({"METRICS_LISTEN": "[::]:9100"}) == ["http://[::1]:9100/healthz"]
    assert healthcheck.health_urls(
        {"WEBHOOK_URL": "https://bot.example/tg", "METRICS_LISTEN": "127.0.0.1:9100"}
    ) == [f"http://{DEFAULT_WEBHOOK_LISTEN}/healthz", "http://127.0.0.1:9100/healthz"]
    assert healthcheck.health_urls(
        {"WEBHOOK_URL": "https://bot.example/tg", "WEBHOOK_LISTEN": "0.0.0.0:8443"}
    ) == ["http://127.0.0.1:8443/healthz"]


async def _probe(env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.healthcheck",
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, (out + err).decode()


async def test_the_probe_passes_against_a_running_bot(
    app_factory: AppFactory, emulator: BotAPIEmulator
) -> None:
    async with app_factory(metrics_listen="127.0.0.1:0") as app:
        assert app.ops_server is not None
        port = app.ops_server.url.rpartition(":")[2]
        code, output = await _probe({"METRICS_LISTEN": f"0.0.0.0:{port}"})
    assert code == 0, output
    assert "HTTP 200" in output


async def test_the_probe_fails_when_nothing_listens() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Closed again: nothing listens on that port now.
    code, output = await _probe({"METRICS_LISTEN": f"127.0.0.1:{port}"})
    assert code == 1
    assert "unhealthy" in output


async def test_the_probe_fails_without_a_server_to_ask() -> None:
    code, output = await _probe({})
    assert code == 1
    assert "METRICS_LISTEN" in output


async def test_the_probe_fails_on_a_non_200_answer(
    app_factory: AppFactory, emulator: BotAPIEmulator
) -> None:
    async with app_factory(metrics_listen="127.0.0.1:0") as app:
        assert app.ops_server is not None
        # A URL on the command line, as a HEALTHCHECK may pass one; this one is a 404.
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.healthcheck",
            app.ops_server.url + "/nope",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 1, (out + err).decode()
    assert "HTTP 404" in err.decode()
