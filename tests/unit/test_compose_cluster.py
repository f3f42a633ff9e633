"""docker-compose.cluster.yml over docker-compose.yml (a ClickHouse cluster: 2 shards x 2 replicas with a
3-node Keeper), checked without an engine: `docker-compose config` of the two files, and the ClickHouse
and Keeper configuration they mount (infra/clickhouse/cluster/) against the services they name.
Skipped, with the reason, without docker-compose (tests/unit/test_compose.py says which)."""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common.settings import Settings
from tests.unit.test_compose import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    KAFKA_NODES,
    PYTHON_SERVICES,
    ROOT,
    SECRETS,
    _dependencies,
    _environment,
    _mounts,
    _need_compose,
)

CLUSTER_FILE = ROOT / "docker-compose.cluster.yml"
SERVER_XML = ROOT / "infra" / "clickhouse" / "cluster" / "server.xml"
KEEPER_XML = ROOT / "infra" / "clickhouse" / "cluster" / "keeper.xml"
CLUSTER_SECRETS = {**SECRETS, "BAROMETRE_CLICKHOUSE_CLUSTER_SECRET": "test-cluster-secret"}
CLICKHOUSE_NODES = ("clickhouse", "clickhouse-2", "clickhouse-3", "clickhouse-4")
KEEPER_NODES = ("keeper-1", "keeper-2", "keeper-3")
BAROMETRE_SERVICES = (*PYTHON_SERVICES, "kafka-access", "clickhouse-access")


def _config(env_file: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BAROMETRE_", "GRAFANA_", "PROMETHEUS_", "COMPOSE_", "DOCKER_"))
    }
    args = [
        *_need_compose(),
        "--project-directory", str(ROOT),
        "-f", str(COMPOSE_FILE),
        "-f", str(CLUSTER_FILE),
        "--env-file", str(env_file),
        "config",
    ]  # fmt: skip
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env_file = tmp_path_factory.mktemp("compose-cluster") / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in CLUSTER_SECRETS.items()))
    result = _config(env_file)
    assert result.returncode == 0, f"compose config failed:\n{result.stderr}"
    config = yaml.safe_load(result.stdout)
    assert isinstance(config, dict)
    return config


def _xml(path: Path) -> ET.Element:
    return ET.parse(path).getroot()  # noqa: S314 (the repository's own files)


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    service: dict[str, Any] = compose["services"][name]
    return service


def test_the_cluster_secret_is_required(tmp_path: Path) -> None:
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in SECRETS.items()))
    result = _config(env_file)
    assert result.returncode != 0
    assert "BAROMETRE_CLICKHOUSE_CLUSTER_SECRET" in result.stderr
    assert "BAROMETRE_CLICKHOUSE_CLUSTER_SECRET=\n" in ENV_EXAMPLE.read_text()


def test_three_brokers_four_servers_three_keepers_two_workers(compose: dict[str, Any]) -> None:
    services = set(compose["services"])
    assert {*KAFKA_NODES, *CLICKHOUSE_NODES, *KEEPER_NODES} <= services
    assert _service(compose, "scoring")["deploy"]["replicas"] == 2
    for node in CLICKHOUSE_NODES:
        assert _service(compose, node)["image"].startswith("clickhouse/clickhouse-server:")
    for node in KEEPER_NODES:
        assert _service(compose, node)["image"].startswith("clickhouse/clickhouse-keeper:")


def _remote_servers() -> tuple[str, list[list[str]], bool]:
    root = _xml(SERVER_XML)
    clusters = list(root.find("remote_servers") or [])
    assert len(clusters) == 1
    cluster = clusters[0]
    shards = [
        [r.findtext("host", "") for r in shard.findall("replica")] for shard in cluster.findall("shard")
    ]
    internal = all(s.findtext("internal_replication") == "true" for s in cluster.findall("shard"))
    return cluster.tag, shards, internal


def test_every_service_names_the_cluster_the_servers_define(compose: dict[str, Any]) -> None:
    name, shards, internal = _remote_servers()
    assert len(shards) == 2 and all(len(replicas) == 2 for replicas in shards)
    assert sorted(h for replicas in shards for h in replicas) == sorted(CLICKHOUSE_NODES)
    assert internal, "Replicated tables need internal_replication: the Distributed table writes one replica"
    for service in BAROMETRE_SERVICES:
        env = _environment(_service(compose, service))
        assert env["BAROMETRE_CLICKHOUSE_CLUSTER"] == name, service
        assert env["BAROMETRE_CLICKHOUSE_URL"].startswith("http://clickhouse:"), service
    assert Settings(clickhouse_cluster=name).clickhouse_cluster == name


def test_each_server_has_the_macros_of_its_place_in_the_cluster(compose: dict[str, Any]) -> None:
    _, shards, _ = _remote_servers()
    seen = set()
    for number, replicas in enumerate(shards, start=1):
        for host in replicas:
            service = _service(compose, host)
            env = _environment(service)
            assert int(env["CLICKHOUSE_SHARD"]) == number, host
            seen.add((env["CLICKHOUSE_SHARD"], env["CLICKHOUSE_REPLICA"]))
            assert (
                env["BAROMETRE_CLICKHOUSE_CLUSTER_SECRET"]
                == CLUSTER_SECRETS["BAROMETRE_CLICKHOUSE_CLUSTER_SECRET"]
            )
            assert service.get("hostname", host) == host
            mounts = _mounts(service)
            assert mounts["/etc/clickhouse-server/config.d/cluster.xml"] == ("bind", str(SERVER_XML))
            assert mounts["/var/lib/clickhouse"][0] == "volume"
            assert set(_dependencies(service)) >= set(KEEPER_NODES), host
            assert _dependencies(service)["keeper-1"] == "service_healthy"
    assert len(seen) == 4, "two servers with the same macros would share one replica path"
    macros = _xml(SERVER_XML).find("macros")
    assert macros is not None
    assert {(e.tag, e.get("from_env")) for e in macros} == {
        ("shard", "CLICKHOUSE_SHARD"),
        ("replica", "CLICKHOUSE_REPLICA"),
    }
    volumes = {_mounts(_service(compose, n))["/var/lib/clickhouse"][1] for n in CLICKHOUSE_NODES}
    assert len(volumes) == 4


def test_keeper_quorum_matches_the_servers_and_the_keepers(compose: dict[str, Any]) -> None:
    server = _xml(SERVER_XML)
    assert [n.findtext("host") for n in server.iter("node")] == list(KEEPER_NODES)
    keeper = _xml(KEEPER_XML).find("keeper_server")
    assert keeper is not None
    raft = {s.findtext("id"): s.findtext("hostname") for s in keeper.iter("server")}
    assert raft == {str(i): name for i, name in enumerate(KEEPER_NODES, start=1)}
    for name in KEEPER_NODES:
        service = _service(compose, name)
        assert raft[_environment(service)["KEEPER_SERVER_ID"]] == name
        mounts = _mounts(service)
        assert mounts["/etc/clickhouse-keeper/keeper_config.xml"] == ("bind", str(KEEPER_XML))
        assert mounts["/var/lib/clickhouse-keeper"][0] == "volume"
        assert "healthcheck" in service


def test_users_and_tables_are_made_once_every_server_is_up(compose: dict[str, Any]) -> None:
    """ON CLUSTER waits for every host, and users live in Keeper (replicated access storage)."""
    depends = _dependencies(_service(compose, "clickhouse-access"))
    assert {n: depends.get(n) for n in CLICKHOUSE_NODES} == dict.fromkeys(CLICKHOUSE_NODES, "service_healthy")
    assert (
        _dependencies(_service(compose, "migrate"))["clickhouse-access"] == "service_completed_successfully"
    )
    directories = _xml(SERVER_XML).find("user_directories")
    assert directories is not None and directories.find("replicated/zookeeper_path") is not None
