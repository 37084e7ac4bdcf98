"""docker-compose.yml, the Dockerfiles and the env file hold together with the code they run.

There is no Docker engine here: Debian's `docker-compose config` validates the file against the
Compose schema without one, and the rest is checked against the repository itself (every command
is a real `atelier` command, every setting a real setting, every copied file a real file).
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from atelier.celery_app import QUEUES
from atelier.settings import Settings
from tests.support.procs import ATELIER, REPO, atelier_env, atelier_process
from tests.support.servers import free_port

COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / "deploy" / "atelier.env.example"
ENV_FILE = "deploy/atelier.env"  # where earlier versions wanted it
DOCKERFILES = {"atelier:cpu": REPO / "Dockerfile", "atelier:gpu": REPO / "Dockerfile.gpu"}
SERVICES = {
    *("redis", "postgres", "migrate", "weights", "api", "worker-nst", "worker-video", "beat"),
    "flower",
}
ATELIER_SERVICES = SERVICES - {"redis", "postgres"}
NOT_ATELIER_SETTINGS = {"POSTGRES_PASSWORD", "POSTGRES_USER", "POSTGRES_DB"}
PIP_SETTINGS = {"PIP_INDEX_URL"}  # pip's own: the `weights` service fetches through pip
PUBLISH_ADDRESSES = {"API_BIND_ADDRESS", "FLOWER_BIND_ADDRESS"}  # compose's own, for `ports`
ASSIGNMENT = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # resolves the `<<: *atelier` merges


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def _env_lines() -> list[tuple[bool, str, str]]:
    """(active, name, value) for every `NAME=value` line of the example, commented or not."""
    found = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        if match := ASSIGNMENT.match(line.strip()):
            found.append((match[1] is None, match[2], match[3]))
    return found


def _clean_clone(tmp_path: Path) -> Path:
    """A fresh `git clone` of this repository, as a new user gets it: no env file, nothing set up.
    The working tree's compose file replaces the committed one, so an edit is tested before its
    commit."""
    clone = tmp_path / "clone"
    done = subprocess.run(
        ["git", "clone", "--quiet", "--depth", "1", f"file://{REPO}", str(clone)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    shutil.copy(COMPOSE, clone / "docker-compose.yml")
    return clone


def _docker_compose_config(
    project: Path, env: dict[str, str] | None = None, *args: str
) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` in `project`, with no variables but PATH unless given."""
    return subprocess.run(
        ["docker-compose", *args, "config"],
        capture_output=True,
        text=True,
        cwd=project,
        env={"PATH": os.environ["PATH"], **(env or {})},
        timeout=60,
    )


@pytest.fixture
def docker_compose() -> None:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (scripts/ensure-services.sh installs it)")


@pytest.mark.usefixtures("docker_compose")
def test_docker_compose_validates_a_clean_clone_as_shipped(tmp_path: Path):
    clone = _clean_clone(tmp_path)
    assert not (clone / ".env").exists() and not (clone / ENV_FILE).exists()
    done = _docker_compose_config(clone)
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr  # no variable left unset without a default
    resolved = yaml.safe_load(done.stdout)
    assert set(resolved["services"]) == SERVICES
    gpu = resolved["services"]["worker-nst"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    api = resolved["services"]["api"]["environment"]
    assert (
        api["ATELIER_DATABASE_URL"] == "postgresql+psycopg://atelier:atelier@postgres:5432/atelier"
    )
    assert resolved["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == "atelier"
    assert api["ATELIER_API_TOKEN"] is None  # unset: not passed to the container at all
    # The GPU worker starts once the one-shot `weights` service has put verified weights in the
    # Keras cache volume it mounts (or found them where ATELIER_VGG_WEIGHTS points).
    weights, nst = resolved["services"]["weights"], resolved["services"]["worker-nst"]
    assert weights["command"] == ["atelier", "weights", "fetch"] or (
        weights["command"] == "atelier weights fetch"
    )
    assert nst["depends_on"]["weights"]["condition"] == "service_completed_successfully"
    cache = {v["target"]: v["source"] for v in nst["volumes"] if isinstance(v, dict)}
    cache |= {v.split(":")[1]: v.split(":")[0] for v in nst["volumes"] if isinstance(v, str)}
    fetched = {v["target"]: v["source"] for v in weights["volumes"] if isinstance(v, dict)}
    fetched |= {v.split(":")[1]: v.split(":")[0] for v in weights["volumes"] if isinstance(v, str)}
    for shared in ("/home/atelier/.keras", "/opt/atelier/weights"):
        assert fetched[shared] == cache[shared], shared
    # Flower is opt-in (a profile): `docker compose up` starts everything else without it.
    assert resolved["services"]["flower"]["profiles"] == ["monitor"]
    # The validator does reject what the schema forbids.
    compose = clone / "docker-compose.yml"
    compose.write_text(compose.read_text().replace("driver: nvidia", "drivers: nvidia"))
    refused = _docker_compose_config(clone)
    assert refused.returncode != 0 and "drivers" in refused.stderr


def _published_on(service: dict[str, Any]) -> list[str]:
    """The host address of each port a resolved service publishes (all: 0.0.0.0)."""
    hosts = []
    for port in service.get("ports", []):
        if isinstance(port, dict):  # the long syntax
            hosts.append(port.get("host_ip") or "0.0.0.0")
        else:
            parts = str(port).split(":")
            hosts.append(parts[0] if len(parts) == 3 else "0.0.0.0")
    return hosts


@pytest.mark.usefixtures("docker_compose")
def test_a_clean_clone_publishes_on_loopback_only_and_the_api_keeps_a_token(tmp_path: Path):
    clone = _clean_clone(tmp_path)
    services = yaml.safe_load(_docker_compose_config(clone).stdout)["services"]
    published = {name: _published_on(s) for name, s in services.items() if s.get("ports")}
    assert published == {"api": ["127.0.0.1"], "flower": ["127.0.0.1"]}
    api = services["api"]
    token_file = api["environment"]["ATELIER_API_TOKEN_FILE"]
    assert token_file.startswith(api["environment"]["ATELIER_DATA_DIR"] + "/")  # in the volume
    assert "--insecure-no-auth" not in _command(api)
    # Told otherwise, the API is published on every interface of the host (with its token).
    told = _docker_compose_config(clone, {"API_BIND_ADDRESS": "0.0.0.0"})
    services = yaml.safe_load(told.stdout)["services"]
    assert _published_on(services["api"]) == ["0.0.0.0"]
    assert _published_on(services["flower"]) == ["127.0.0.1"]


@pytest.mark.slow
def test_the_compose_api_command_serves_only_with_the_token_it_wrote(
    compose: dict[str, Any], tmp_path: Path, pg_url: str, redis_url: str
):
    command = _command(compose["services"]["api"])
    port = free_port()
    command[command.index("--port") + 1] = str(port)
    token_file = tmp_path / "data" / "api-token"
    env = {
        "ATELIER_DATABASE_URL": pg_url,
        "ATELIER_BROKER_URL": redis_url,
        "ATELIER_DATA_DIR": str(tmp_path / "data"),
        "ATELIER_API_TOKEN_FILE": str(token_file),
    }
    base = f"http://127.0.0.1:{port}"
    with atelier_process(command[1:], env, tmp_path / "api.log", ready="startup complete"):
        token = token_file.read_text().strip()
        assert len(token) >= 32 and token_file.stat().st_mode & 0o777 == 0o600
        assert httpx.get(f"{base}/v1/jobs", timeout=10).status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{base}/v1/jobs", headers=auth, timeout=10).status_code == 200
    assert "wrote a new API token" in (tmp_path / "api.log").read_text()


@pytest.mark.usefixtures("docker_compose")
def test_settings_come_from_an_optional_env_file_or_the_shell(tmp_path: Path):
    clone = _clean_clone(tmp_path)
    shutil.copy(ENV_EXAMPLE, clone / ".env")  # what the example tells a user to do
    env = {"ATELIER_API_TOKEN": "from-the-shell", "ATELIER_MAX_BATCH": "2"}
    done = _docker_compose_config(clone, env)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    values = {name: value for on, name, value in _env_lines() if on}
    password = values["POSTGRES_PASSWORD"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == password
    for name in ATELIER_SERVICES:
        environment = services[name]["environment"]
        assert f"atelier:{password}@postgres:5432/atelier" in environment["ATELIER_DATABASE_URL"]
        assert environment["ATELIER_FLOWER_PASSWORD"] == values["ATELIER_FLOWER_PASSWORD"]
        assert environment["ATELIER_API_TOKEN"] == "from-the-shell"
        assert environment["ATELIER_MAX_BATCH"] == "2"


def test_services_are_the_deployment(compose: dict[str, Any]):
    services = compose["services"]
    assert set(services) == SERVICES
    assert set(compose["volumes"]) >= {"atelier-data", "redis-data", "postgres-data"}

    redis = services["redis"]
    assert "--appendonly yes" in redis["command"]
    assert any(v.startswith("redis-data:") for v in redis["volumes"])
    assert any(v.startswith("postgres-data:") for v in services["postgres"]["volumes"])
    for name in ("redis", "postgres", "api", "flower"):
        assert services[name]["healthcheck"]["test"], name

    for name in ATELIER_SERVICES:
        service = services[name]
        assert "env_file" not in service, name  # a missing one would stop `docker compose up`
        passed = {f"ATELIER_{f.upper()}" for f in Settings.model_fields}
        passed |= PIP_SETTINGS if name == "weights" else set()
        assert set(service["environment"]) == passed, name  # every setting reaches it
        assert "atelier-data:/var/lib/atelier" in service["volumes"], name
        assert service["environment"]["ATELIER_DATA_DIR"] == "/var/lib/atelier", name
        assert service["environment"]["ATELIER_BROKER_URL"].startswith("redis://redis:"), name
        assert service["image"] in DOCKERFILES, name
        waits = {dep: how["condition"] for dep, how in service["depends_on"].items()}
        if name == "migrate":
            assert service["restart"] == "no"
            assert waits == {"postgres": "service_healthy"}
        elif name == "weights":  # one-off; needs no database, no broker
            assert service["restart"] == "no" and waits == {}
        elif name == "flower":  # without its password it exits, and is not restarted for ever
            assert service["restart"] == "on-failure:3"
        else:
            assert service["restart"] == "unless-stopped", name
            ready = {"weights": "service_completed_successfully"} if name == "worker-nst" else {}
            assert waits == {
                "redis": "service_healthy",
                "postgres": "service_healthy",
                "migrate": "service_completed_successfully",
                **ready,
            }, name


def test_gpu_worker_takes_one_gpu_and_one_job_at_a_time(compose: dict[str, Any]):
    services = compose["services"]
    nst = services["worker-nst"]
    assert nst["build"]["dockerfile"] == "Dockerfile.gpu"
    devices = nst["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    command = _command(nst)
    assert command[command.index("--queues") + 1] == "nst"
    assert command[command.index("--concurrency") + 1] == "1"
    video = _command(services["worker-video"])
    assert set(video[video.index("--queues") + 1].split(",")) == {"video", "fast", "default"}
    # Every queue has a consumer.
    consumed = {"nst"} | set(video[video.index("--queues") + 1].split(","))
    assert consumed == set(QUEUES)
    # The mounted-weights folder exists, as the env example says.
    for volume in nst["volumes"]:
        source = volume.split(":", 1)[0]
        if source.startswith("./"):
            assert (REPO / source).is_dir(), source


@pytest.mark.parametrize("service", sorted(ATELIER_SERVICES))
def test_every_command_is_a_real_atelier_command(compose: dict[str, Any], service: str):
    command = _command(compose["services"][service])
    assert command[0] == "atelier"
    # Options are parsed before `--help` acts, so an unknown option fails here too.
    done = subprocess.run(
        [*ATELIER, *command[1:], "--help"],
        env=atelier_env({}),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"


def test_every_variable_is_a_setting_and_every_setting_is_documented(compose: dict[str, Any]):
    fields = set(Settings.model_fields)
    named = {name for _, name, _ in _env_lines()}
    for service in compose["services"].values():
        named |= set(service.get("environment", {}))
    unknown = {n for n in named if n.startswith("ATELIER_") and n[8:].lower() not in fields}
    assert not unknown, f"not settings of atelier.settings.Settings: {sorted(unknown)}"
    others = {n for n in named if not n.startswith("ATELIER_")} - NOT_ATELIER_SETTINGS
    others -= {n for n in PUBLISH_ADDRESSES if f"${{{n}:-127.0.0.1}}" in COMPOSE.read_text()}
    documented = {name for _, name, _ in _env_lines()}
    others -= {n for n in PIP_SETTINGS if n in documented}
    assert not others, f"variables no service reads: {sorted(others)}"
    undocumented = {f"ATELIER_{f.upper()}" for f in fields} - named
    assert not undocumented, f"add to {ENV_EXAMPLE.name}: {sorted(undocumented)}"


def test_env_example_values_are_valid_settings():
    active = {name for on, name, _ in _env_lines() if on}
    assert {"ATELIER_FLOWER_PASSWORD", "POSTGRES_PASSWORD"} == active
    for _, name, value in _env_lines():
        if name.startswith("ATELIER_") and value:
            Settings(_env_file=None, **{name[8:].lower(): value})


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _dockerignored() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_dockerfiles_build_from_files_that_exist(image: str, tmp_path: Path):
    dockerfile = DOCKERFILES[image]
    steps = _instructions(dockerfile)
    base = next(args for keyword, args in steps if keyword == "FROM")
    assert base.startswith("python:3.11-slim" if image == "atelier:cpu" else "tensorflow/")
    for keyword, args in steps:
        if keyword == "COPY":
            *sources, _ = shlex.split(args)
            for source in sources:
                assert (REPO / source).exists(), f"{dockerfile.name}: COPY {source}"
    for keyword, args in steps:
        # Python run during the build: it compiles, and what it imports from the project exists.
        for code in re.findall(r'python3? -c "([^"]+)"', args) if keyword == "RUN" else []:
            compile(code, dockerfile.name, "exec")
            for module, name in re.findall(r"from ([\w.]+) import (\w+)", code):
                assert hasattr(importlib.import_module(module), name), f"{dockerfile.name}: {code}"
    users = [args for keyword, args in steps if keyword == "USER"]
    assert users and users[-1] not in {"root", "0"}, "the image must not run as root"

    ignored = _dockerignored()
    for needed in ("pyproject.toml", "README.md", "atelier", "api", "workers", "samples"):
        assert needed in {p.name for p in REPO.iterdir()}, needed
        assert needed not in ignored, f".dockerignore drops {needed}, which the image needs"
    for secret in ("deploy/atelier.env", ".env", ".venv", "data", "deploy/weights"):
        assert secret in ignored, f".dockerignore must keep {secret} out of the image"

    # The requirements step reads pyproject.toml the way the Dockerfile runs it (sh -c).
    step = next(args for keyword, args in steps if keyword == "RUN" and "tomllib" in args)
    extract = step.split("&&")[0].replace("/tmp/requirements.txt", str(tmp_path / "req.txt"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    done = subprocess.run(
        ["/bin/sh", "-c", extract],
        cwd=tmp_path,
        env={"PATH": f"{Path(ATELIER[0]).parent}:/usr/bin:/bin"},  # python, python3: this venv
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    with (REPO / "pyproject.toml").open("rb") as handle:
        wanted = tomllib.load(handle)["project"]["dependencies"]
    assert (tmp_path / "req.txt").read_text().split("\n")[:-1] == wanted


def test_compose_builds_from_dockerfiles_that_exist(compose: dict[str, Any]):
    for name, service in compose["services"].items():
        if "build" in service:
            build = service["build"]
            assert (REPO / build["context"]).is_dir(), name
            assert (REPO / build["context"] / build["dockerfile"]).is_file(), name
            assert DOCKERFILES[service["image"]].name == build["dockerfile"], name
