"""Checks of the container deployment (docker-compose.yml and what it mounts), without a Docker engine.

`docker-compose config` (or `docker compose config`) validates and normalises the file; these tests read
its output and the files it refers to: infra/docker/Dockerfile, infra/prometheus/prometheus.yml,
infra/grafana/**, infra/kafka/docker-entrypoint.sh (run in its --print mode on each broker's
environment), .env.example, .dockerignore. The security settings themselves (SCRAM users, ACLs, the
services' Kafka and ClickHouse users) are exercised on a real broker by
tests/integration/test_kafka_security.py.

Needs one of: the Debian package `docker-compose` (Compose v1.29) or the `docker compose` v2 plugin; the
tests that need it are skipped, with the reason, when neither is installed. `promtool` (Debian package
`prometheus`) is optional: without it the Prometheus config and the dashboard's PromQL are only parsed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "infra" / "docker" / "Dockerfile"
PROMETHEUS_CONFIG = ROOT / "infra" / "prometheus" / "prometheus.yml"
GRAFANA_PROVISIONING = ROOT / "infra" / "grafana" / "provisioning"
GRAFANA_DASHBOARDS = ROOT / "infra" / "grafana" / "dashboards"
ENV_EXAMPLE = ROOT / ".env.example"
KAFKA_ENTRYPOINT = ROOT / "infra" / "kafka" / "docker-entrypoint.sh"
DOCKERIGNORE = ROOT / ".dockerignore"

# Values the test gives to the variables that have no default in docker-compose.yml.
SERVICE_ROLES = ("ingest", "scoring", "api", "poller")
CLICKHOUSE_ROLES = ("migrate", *SERVICE_ROLES)
SECRETS = {
    "BAROMETRE_BOOTSTRAP_TOKEN": "test-bootstrap-token",
    "BAROMETRE_CLICKHOUSE_PASSWORD": "test-clickhouse-password",
    "GRAFANA_ADMIN_PASSWORD": "test-grafana-password",
    "BAROMETRE_KAFKA_ADMIN_PASSWORD": "test-kafka-admin",
    **{f"BAROMETRE_KAFKA_{r.upper()}_PASSWORD": f"test-kafka-{r}" for r in SERVICE_ROLES},
    **{f"BAROMETRE_CLICKHOUSE_{r.upper()}_PASSWORD": f"test-clickhouse-{r}" for r in CLICKHOUSE_ROLES},
}
KAFKA_NODES = ("kafka-1", "kafka-2", "kafka-3")
ONE_SHOTS = {"migrate", "kafka-access", "clickhouse-access"}

ALL_SERVICES = {
    *KAFKA_NODES,
    "kafka-access",
    "clickhouse-access",
    "clickhouse",
    "migrate",
    "ingest",
    "scoring",
    "api",
    "poller",
    "prometheus",
    "grafana",
}
PYTHON_SERVICES = {
    "migrate": 0,
    "ingest": 8001,
    "scoring": 8002,
    "api": 8000,
    "poller": 8003,
}  # name -> HTTP port
LONG_RUNNING = ALL_SERVICES - ONE_SHOTS

# Metrics the dashboard is built on; the services must expose them under these names.
METRICS = (
    "barometre_http_requests_total",
    "barometre_http_request_duration_seconds",
    "barometre_ingest_snapshots_total",
    "barometre_scoring_events_total",
    "barometre_scoring_consumer_lag",
)


# ---------------------------------------------------------------------------------------------------------
# Running `config`


@cache
def _compose_command() -> tuple[str, ...] | None:
    """`docker compose` (v2 plugin) when it works, else `docker-compose` (v1), else None."""
    docker = shutil.which("docker")
    if docker:
        try:
            probe = subprocess.run(
                [docker, "compose", "version"], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            probe = None
        if probe is not None and probe.returncode == 0:
            return (docker, "compose")
    legacy = shutil.which("docker-compose")
    return (legacy,) if legacy else None


def _need_compose() -> tuple[str, ...]:
    command = _compose_command()
    if command is None:
        pytest.skip(
            "neither `docker compose` (v2 plugin) nor `docker-compose` is installed: "
            "apt-get install docker-compose (Debian package) to run the docker-compose.yml checks"
        )
    return command


def _run_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    # Only what the test chooses reaches the interpolation: no variable of the caller's shell, no .env.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BAROMETRE_", "GRAFANA_", "PROMETHEUS_", "COMPOSE_", "DOCKER_"))
    }
    args = [
        *_need_compose(),
        "--project-directory", str(ROOT),
        "-f", str(COMPOSE_FILE),
        "--env-file", str(env_file),
        "config",
    ]  # fmt: skip
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The normalised configuration, with the secrets set and every other variable at its default."""
    env_file = tmp_path_factory.mktemp("compose") / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in SECRETS.items()))
    result = _run_config(env_file)
    assert result.returncode == 0, f"compose config failed:\n{result.stderr}"
    config = yaml.safe_load(result.stdout)
    assert isinstance(config, dict)
    return config


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    service: dict[str, Any] = compose["services"][name]
    return service


# ---------------------------------------------------------------------------------------------------------
# Normalising the differences between Compose v1 and v2 outputs


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _ports(service: dict[str, Any]) -> set[tuple[str, int, int]]:
    """(host ip, published port, container port) of each published port; host ip "" = all interfaces."""
    found: set[tuple[str, int, int]] = set()
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            found.add((str(port.get("host_ip") or ""), int(port["published"]), int(port["target"])))
            continue
        spec = str(port).split("/", 1)[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 3:
            found.add((parts[0], int(parts[1]), int(parts[2])))
        elif len(parts) == 2:
            found.add(("", int(parts[0]), int(parts[1])))
    return found


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def _dependencies(service: dict[str, Any]) -> dict[str, str]:
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in depends.items()}


def _mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Container path -> (kind, source): kind "volume" (named volume) or "bind" (absolute host path)."""
    found: dict[str, tuple[str, str]] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            found[volume["target"]] = (volume["type"], str(volume.get("source", "")))
            continue
        source, target, *_ = str(volume).split(":")
        found[target] = ("bind" if source.startswith(("/", ".")) else "volume", source)
    return found


def _healthcheck_test(service: dict[str, Any]) -> str:
    test = (service.get("healthcheck") or {}).get("test") or []
    return " ".join(test) if isinstance(test, list) else str(test)


# ---------------------------------------------------------------------------------------------------------
# docker-compose.yml


def test_services_exist(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= ALL_SERVICES


def test_published_ports(compose: dict[str, Any]) -> None:
    expected = {
        "api": ("", 8000, 8000),
        "ingest": ("", 8001, 8001),
        "grafana": ("", 3000, 3000),
        # Not meant to be public: bound to the loopback interface unless BAROMETRE_INFRA_BIND_ADDRESS says so.
        "clickhouse": ("127.0.0.1", 8123, 8123),
        "prometheus": ("127.0.0.1", 9090, 9090),
        # host 9092..9094 -> each node's EXTERNAL listener
        "kafka-1": ("127.0.0.1", 9092, 9094),
        "kafka-2": ("127.0.0.1", 9093, 9094),
        "kafka-3": ("127.0.0.1", 9094, 9094),
    }
    for name, port in expected.items():
        assert port in _ports(_service(compose, name)), (name, _ports(_service(compose, name)))
    for name in ("migrate", "scoring", "poller", "kafka-access", "clickhouse-access"):
        assert not _ports(_service(compose, name)), f"{name} publishes no port"


def _kafka_properties(compose: dict[str, Any], node: str) -> tuple[dict[str, str], str]:
    """The server.properties infra/kafka/docker-entrypoint.sh writes for ``node``, and its format arguments."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **_environment(_service(compose, node))}
    result = subprocess.run(
        ["bash", str(KAFKA_ENTRYPOINT), "--print"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("format:"), lines
    props = dict(line.split("=", 1) for line in lines[:-1])
    return props, lines[-1]


def test_kafka_is_three_kraft_nodes_with_sasl_scram_and_acls(compose: dict[str, Any]) -> None:
    voters = set()
    for index, node in enumerate(KAFKA_NODES, start=1):
        kafka = _service(compose, node)
        assert kafka["image"] == "apache/kafka:4.3.1"
        assert _mounts(kafka)["/opt/barometre/docker-entrypoint.sh"] == ("bind", str(KAFKA_ENTRYPOINT))
        assert _command(kafka) == [] and kafka["entrypoint"] == [
            "/bin/bash",
            "/opt/barometre/docker-entrypoint.sh",
        ]
        props, format_args = _kafka_properties(compose, node)
        assert props["node.id"] == str(index)
        assert props["process.roles"] == "broker,controller"
        voters.add(props["controller.quorum.voters"])
        bound = dict(item.split("://", 1) for item in props["listeners"].split(","))
        advertised = dict(item.split("://", 1) for item in props["advertised.listeners"].split(","))
        protocols = dict(item.split(":", 1) for item in props["listener.security.protocol.map"].split(","))
        assert set(bound) == set(protocols) == {"INTERNAL", "EXTERNAL", "CONTROLLER"}
        # Every listener authenticates: SCRAM for clients and brokers, PLAIN for the KRaft quorum.
        assert set(protocols.values()) == {"SASL_PLAINTEXT"}
        assert props["listener.name.internal.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
        assert props["listener.name.external.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
        assert props["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
        assert props["listener.name.controller.sasl.enabled.mechanisms"] == "PLAIN"
        assert props["sasl.mechanism.controller.protocol"] == "PLAIN"
        assert (
            'username="admin" password="***"'
            in props["listener.name.internal.scram-sha-512.sasl.jaas.config"]
        )
        assert 'user_admin="***"' in props["listener.name.controller.plain.sasl.jaas.config"]
        # ACLs: deny by default, the brokers' own user is the only super user, no topic made by accident.
        assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
        assert props["super.users"] == "User:admin"
        assert props["allow.everyone.if.no.acl.found"] == "false"
        assert props["auto.create.topics.enable"] == "false"
        # The SCRAM users written when the storage is formatted: the administrator and one per service.
        users = re.findall(r"SCRAM-SHA-512=\[name=([^,]+),password=\*\*\*\]", format_args)
        assert users == ["admin", *(f"barometre-{r}" for r in ("ingest", "poller", "scoring", "api"))]
        # Durable: three replicas everywhere, two in sync for a write to be acknowledged.
        for key in (
            "default.replication.factor",
            "offsets.topic.replication.factor",
            "transaction.state.log.replication.factor",
            "share.coordinator.state.topic.replication.factor",
        ):
            assert props[key] == "3", key
        for key in (
            "min.insync.replicas",
            "transaction.state.log.min.isr",
            "share.coordinator.state.topic.min.isr",
        ):
            assert props[key] == "2", key
        assert props["inter.broker.listener.name"] == "INTERNAL"
        assert advertised["INTERNAL"] == f"{node}:9092"
        assert bound["INTERNAL"].endswith(":9092") and bound["EXTERNAL"].endswith(":9094")
        assert advertised["EXTERNAL"] == f"127.0.0.1:{9091 + index}"
        assert props["log.dirs"] == "/var/lib/kafka/data"
        assert _mounts(kafka)["/var/lib/kafka/data"] == ("volume", f"{node}-data")
    assert voters == {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}


def test_kafka_entrypoint_refuses_bad_scram_users(compose: dict[str, Any]) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **_environment(_service(compose, "kafka-1"))}
    env["BAROMETRE_KAFKA_SCRAM_USERS"] = "admin=has'quote"
    result = subprocess.run(
        ["bash", str(KAFKA_ENTRYPOINT), "--print"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and "is not name=password" in result.stderr, result.stderr


def test_services_log_in_as_their_own_users(compose: dict[str, Any]) -> None:
    """Least privilege: each service has its own Kafka and ClickHouse user; only the access one-shots
    use the administrators' passwords."""
    for role in ("ingest", "scoring", "api", "poller"):
        env = _environment(_service(compose, role))
        assert env["BAROMETRE_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert env["BAROMETRE_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["BAROMETRE_KAFKA_SASL_USERNAME"] == f"barometre-{role}"
        assert env["BAROMETRE_KAFKA_SASL_PASSWORD"] == SECRETS[f"BAROMETRE_KAFKA_{role.upper()}_PASSWORD"]
    for role in CLICKHOUSE_ROLES:
        env = _environment(_service(compose, role))
        assert env["BAROMETRE_CLICKHOUSE_USER"] == f"barometre_{role}"
        assert (
            env["BAROMETRE_CLICKHOUSE_PASSWORD"] == SECRETS[f"BAROMETRE_CLICKHOUSE_{role.upper()}_PASSWORD"]
        )
    admin_secrets = {SECRETS["BAROMETRE_KAFKA_ADMIN_PASSWORD"], SECRETS["BAROMETRE_CLICKHOUSE_PASSWORD"]}
    for name in PYTHON_SERVICES:
        assert not admin_secrets & set(_environment(_service(compose, name)).values()), name
    # The one-shots: the administrators, and every service password they set.
    kafka_access = _environment(_service(compose, "kafka-access"))
    assert _command(_service(compose, "kafka-access")) == ["access", "kafka"]
    assert kafka_access["BAROMETRE_KAFKA_SASL_USERNAME"] == "admin"
    assert kafka_access["BAROMETRE_KAFKA_SASL_PASSWORD"] == SECRETS["BAROMETRE_KAFKA_ADMIN_PASSWORD"]
    clickhouse_access = _environment(_service(compose, "clickhouse-access"))
    assert _command(_service(compose, "clickhouse-access")) == ["access", "clickhouse"]
    assert (
        clickhouse_access["BAROMETRE_CLICKHOUSE_USER"]
        == _environment(_service(compose, "clickhouse"))["CLICKHOUSE_USER"]
    )
    assert clickhouse_access["BAROMETRE_CLICKHOUSE_PASSWORD"] == SECRETS["BAROMETRE_CLICKHOUSE_PASSWORD"]
    for secret, value in SECRETS.items():
        if secret.startswith("BAROMETRE_KAFKA_") and secret != "BAROMETRE_KAFKA_ADMIN_PASSWORD":
            assert kafka_access[secret] == value
        if secret.startswith("BAROMETRE_CLICKHOUSE_") and secret != "BAROMETRE_CLICKHOUSE_PASSWORD":
            assert clickhouse_access[secret] == value


def test_the_roles_match_the_code(compose: dict[str, Any]) -> None:
    """The compose's users are the ones the access code creates and grants."""
    from infra.clickhouse.access import ROLES, user_name
    from services.common.kafka import SERVICE_USERS

    assert set(ROLES) == set(CLICKHOUSE_ROLES)
    assert {user_name(r) for r in ROLES} == {
        _environment(_service(compose, r))["BAROMETRE_CLICKHOUSE_USER"] for r in CLICKHOUSE_ROLES
    }
    assert {r: f"barometre-{r}" for r in SERVICE_ROLES} == SERVICE_USERS


def test_clickhouse_server(compose: dict[str, Any]) -> None:
    clickhouse = _service(compose, "clickhouse")
    assert re.fullmatch(r"clickhouse/clickhouse-server:26\.\d+(\.\d+)*", clickhouse["image"])
    env = _environment(clickhouse)
    assert env["CLICKHOUSE_USER"] == "barometre"
    assert env["CLICKHOUSE_PASSWORD"] == SECRETS["BAROMETRE_CLICKHOUSE_PASSWORD"]
    assert env["CLICKHOUSE_DB"] == "barometre"
    nofile = clickhouse["ulimits"]["nofile"]
    assert int(nofile["soft"]) >= 262144
    assert int(nofile["hard"]) >= 262144
    assert _mounts(clickhouse)["/var/lib/clickhouse"] == ("volume", "clickhouse-data")


def test_python_services_share_one_image(compose: dict[str, Any]) -> None:
    builds = set()
    images = set()
    for name in PYTHON_SERVICES:
        service = _service(compose, name)
        build = service["build"]
        context = Path(build["context"])
        assert context.resolve() == ROOT
        builds.add((context / build.get("dockerfile", "Dockerfile")).resolve())
        images.add(service["image"])
    assert builds == {DOCKERFILE}
    assert len(images) == 1, images


def test_python_services_commands(compose: dict[str, Any]) -> None:
    for name in PYTHON_SERVICES:
        # The image's ENTRYPOINT is `barometre`: the command is the subcommand.
        assert _command(_service(compose, name)) == [name]


def test_python_services_settings(compose: dict[str, Any]) -> None:
    for name in (*PYTHON_SERVICES, "kafka-access", "clickhouse-access"):
        env = _environment(_service(compose, name))
        assert env["BAROMETRE_KAFKA_BOOTSTRAP"] == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
        assert env["BAROMETRE_KAFKA_REPLICATION"] == "3"
        assert env["BAROMETRE_CLICKHOUSE_URL"] == "http://clickhouse:8123"
        assert env["BAROMETRE_CLICKHOUSE_DATABASE"] == "barometre"
        assert env["BAROMETRE_BOOTSTRAP_TOKEN"] == SECRETS["BAROMETRE_BOOTSTRAP_TOKEN"]
        for svc, port in (("API", 8000), ("INGEST", 8001), ("SCORING", 8002), ("POLLER", 8003)):
            assert env[f"BAROMETRE_{svc}_HOST"] == "0.0.0.0"
            assert env[f"BAROMETRE_{svc}_PORT"] == str(port)
        assert env["BAROMETRE_LOG_LEVEL"]
        assert env["BAROMETRE_DATA_DIR"]


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name in LONG_RUNNING:
        healthcheck = _service(compose, name).get("healthcheck") or {}
        assert healthcheck.get("test"), f"{name} has no healthcheck"
        assert not healthcheck.get("disable"), name
    for name, port in PYTHON_SERVICES.items():
        if port:
            test = _healthcheck_test(_service(compose, name))
            # python:3.11-slim has no curl: the check is a python one-liner on the service's /healthz.
            assert test.startswith("CMD python -c"), test
            assert f"127.0.0.1:{port}/healthz" in test, test
    for node in KAFKA_NODES:
        test = _healthcheck_test(_service(compose, node))
        assert "kafka-broker-api-versions.sh" in test
        # The entrypoint writes the administrator's client settings there (SASL: no anonymous check).
        assert "--command-config /tmp/barometre-kafka/admin-client.properties" in test
    assert "8123/ping" in _healthcheck_test(_service(compose, "clickhouse"))


def test_start_order(compose: dict[str, Any]) -> None:
    assert _dependencies(_service(compose, "kafka-access")) == dict.fromkeys(KAFKA_NODES, "service_healthy")
    assert _dependencies(_service(compose, "clickhouse-access")) == {"clickhouse": "service_healthy"}
    # The migrations run as barometre_migrate, which clickhouse-access creates.
    assert _dependencies(_service(compose, "migrate")) == {
        "clickhouse-access": "service_completed_successfully"
    }
    for name in ("ingest", "scoring", "api", "poller"):
        assert _dependencies(_service(compose, name)) == {
            "kafka-access": "service_completed_successfully",
            "migrate": "service_completed_successfully",
        }, name
    assert _dependencies(_service(compose, "grafana")) == {"prometheus": "service_healthy"}


def test_restart_policies(compose: dict[str, Any]) -> None:
    for name in LONG_RUNNING:
        assert _service(compose, name).get("restart") in {"unless-stopped", "always"}, name
    for name in ONE_SHOTS:
        assert _service(compose, name).get("restart", "no") == "no", name


def test_named_volumes(compose: dict[str, Any]) -> None:
    volumes = {
        *(f"{node}-data" for node in KAFKA_NODES),
        "clickhouse-data",
        "prometheus-data",
        "grafana-data",
    }
    assert set(compose.get("volumes") or {}) >= volumes
    mounted = {
        source
        for service in compose["services"].values()
        for kind, source in _mounts(service).values()
        if kind == "volume"
    }
    assert mounted >= volumes
    assert _mounts(_service(compose, "prometheus"))["/prometheus"] == ("volume", "prometheus-data")
    assert _mounts(_service(compose, "grafana"))["/var/lib/grafana"] == ("volume", "grafana-data")


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    patterns = {
        **dict.fromkeys(KAFKA_NODES, r"apache/kafka:4\.\d+\.\d+"),
        "clickhouse": r"clickhouse/clickhouse-server:26\.\d+(\.\d+)*",
        "prometheus": r"prom/prometheus:v\d+\.\d+\.\d+",
        "grafana": r"grafana/grafana:\d+\.\d+\.\d+",
    }
    for name, pattern in patterns.items():
        assert re.fullmatch(pattern, _service(compose, name)["image"]), _service(compose, name)["image"]


def test_secrets_have_no_default(tmp_path: Path) -> None:
    for missing in SECRETS:
        env_file = tmp_path / f"without-{missing}.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in SECRETS.items() if k != missing))
        result = _run_config(env_file)
        assert result.returncode != 0, f"config succeeded without {missing}"
        assert missing in result.stderr, result.stderr


def test_env_example_documents_every_variable() -> None:
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE_FILE.read_text()))
    documented = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"([A-Z0-9_]+)=(.*)", line.strip())
        if match:
            documented[match.group(1)] = match.group(2)
    assert used <= set(documented), sorted(used - set(documented))
    for secret in SECRETS:
        assert secret in documented
        assert documented[secret] == "", f"{secret} must not have a value in .env.example"


# ---------------------------------------------------------------------------------------------------------
# Dockerfile and .dockerignore


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile() -> None:
    instructions = _dockerfile_instructions()
    args = dict(rest.split("=", 1) for keyword, rest in instructions if keyword == "ARG" and "=" in rest)
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), rest.split()[0])
             for keyword, rest in instructions if keyword == "FROM"]  # fmt: skip
    assert bases, "no FROM"
    assert all(base.startswith("python:3.11") for base in bases), bases
    installs = [rest for keyword, rest in instructions if keyword == "RUN" and "pip install" in rest]
    assert installs
    assert all("-c constraints.txt" in rest for rest in installs), installs
    assert not any(re.search(r"\[.*dev.*\]", rest) for rest in installs), "no dev extras in the image"
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    entrypoints = [rest for keyword, rest in instructions if keyword == "ENTRYPOINT"]
    assert [json.loads(e) for e in entrypoints] == [["barometre"]]


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    patterns = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    patterns.discard("")
    assert {".git", ".venv", ".env", "data", ".cache"} <= patterns
    for needed in ("services", "pyproject.toml", "constraints.txt", "infra"):
        assert needed not in patterns and f"/{needed}" not in patterns, needed


# ---------------------------------------------------------------------------------------------------------
# Prometheus


def _prometheus_targets() -> dict[str, set[str]]:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    # A static target "host:port", or a DNS name resolved to every replica with its port.
    return {
        job["job_name"]: {target for static in job.get("static_configs", []) for target in static["targets"]}
        | {f"{name}:{dns['port']}" for dns in job.get("dns_sd_configs", []) for name in dns["names"]}
        for job in config["scrape_configs"]
    }


def test_prometheus_scrapes_the_three_services() -> None:
    targets = _prometheus_targets()
    for job, target in (
        ("api", "api:8000"),
        ("ingest", "ingest:8001"),
        ("scoring", "scoring:8002"),
        ("poller", "poller:8003"),
    ):
        assert target in targets.get(job, set()), (job, targets)
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"


def test_scoring_may_run_several_workers_found_by_prometheus(compose: dict[str, Any]) -> None:
    # Replicas of one consumer group; no published port, so they do not collide on the host.
    scoring = _service(compose, "scoring")
    assert int(scoring["deploy"]["replicas"]) >= 1
    assert not scoring.get("ports")
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "scoring"]
    assert job["dns_sd_configs"] == [
        {"names": ["scoring"], "type": "A", "port": 8002, "refresh_interval": "30s"}
    ]


def test_prometheus_config_is_mounted(compose: dict[str, Any]) -> None:
    mounts = _mounts(_service(compose, "prometheus"))
    assert mounts["/etc/prometheus/prometheus.yml"] == ("bind", str(PROMETHEUS_CONFIG))
    command = _command(_service(compose, "prometheus"))
    assert "--config.file=/etc/prometheus/prometheus.yml" in command


def test_promtool_check_config() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`); the config was only parsed")
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_CONFIG)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------------------
# Grafana


def _provisioned_datasources() -> list[dict[str, Any]]:
    sources: list[dict[str, Any]] = []
    for path in sorted((GRAFANA_PROVISIONING / "datasources").glob("*.y*ml")):
        sources.extend(yaml.safe_load(path.read_text()).get("datasources") or [])
    return sources


def _dashboards() -> dict[Path, dict[str, Any]]:
    paths = sorted(GRAFANA_DASHBOARDS.glob("*.json"))
    assert paths, "no dashboard"
    return {path: json.loads(path.read_text()) for path in paths}


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def _expressions() -> list[str]:
    return [
        target["expr"]
        for dashboard in _dashboards().values()
        for panel in _panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def test_grafana_datasource_is_prometheus() -> None:
    sources = _provisioned_datasources()
    prometheus = [s for s in sources if s["type"] == "prometheus"]
    assert len(prometheus) == 1, sources
    assert prometheus[0]["url"] == "http://prometheus:9090"
    assert prometheus[0].get("uid")


def test_grafana_dashboards_use_the_provisioned_datasource() -> None:
    uids = {source["uid"] for source in _provisioned_datasources()}
    for path, dashboard in _dashboards().items():
        assert dashboard.get("uid") and dashboard.get("title"), path
        for panel in _panels(dashboard):
            if panel.get("type") == "row":
                continue
            for holder in (panel, *panel.get("targets", [])):
                datasource = holder.get("datasource")
                assert isinstance(datasource, dict), (path, panel.get("title"))
                assert datasource.get("uid") in uids, (path, panel.get("title"), datasource)


def test_grafana_dashboards_cover_the_service_metrics() -> None:
    expressions = "\n".join(_expressions())
    for metric in METRICS:
        assert metric in expressions, metric
    assert 'up{job="api"}' in expressions
    assert "http_requests_total" not in expressions.replace("barometre_http_requests_total", "")


def test_grafana_provisioning_is_mounted(compose: dict[str, Any]) -> None:
    mounts = _mounts(_service(compose, "grafana"))
    kinds = [path for path in sorted(GRAFANA_PROVISIONING.iterdir()) if path.is_dir()]
    assert {path.name for path in kinds} >= {"datasources", "dashboards"}
    for path in kinds:
        assert mounts[f"/etc/grafana/provisioning/{path.name}"] == ("bind", str(path))
    providers = [
        provider
        for path in sorted((GRAFANA_PROVISIONING / "dashboards").glob("*.y*ml"))
        for provider in yaml.safe_load(path.read_text()).get("providers") or []
    ]
    assert providers
    for provider in providers:
        # Each dashboard provider reads a directory that compose mounts from infra/grafana/dashboards.
        assert mounts[provider["options"]["path"]] == ("bind", str(GRAFANA_DASHBOARDS))
    home = _environment(_service(compose, "grafana")).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert (GRAFANA_DASHBOARDS / Path(home).name).exists()


def test_dashboard_promql_parses(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`); PromQL not checked")
    # promtool checks expressions as recording rules; $__rate_interval is Grafana's, give it a value.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:expr_{i}", "expr": expr.replace("$__rate_interval", "1m")}
                    for i, expr in enumerate(_expressions())
                ],
            }
        ]
    }
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
