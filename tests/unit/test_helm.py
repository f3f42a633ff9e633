"""The Helm chart (deploy/helm/barometre) and the operators' examples (deploy/examples/), without a cluster.

* ``helm lint --strict`` of the chart, and ``helm template`` with its default values and with other
  value sets;
* every rendered resource validated against its schema, offline: the Kubernetes kinds against the
  schemas of the ``kubernetes-validate`` package (strict: an unknown field fails), Strimzi's and
  Altinity's resources against the CRD schemas vendored in deploy/schemas/;
* the chart agrees with the code: the KafkaUsers' ACLs are ``service_permissions()``, the KafkaTopics
  are the ``Topic`` enum with the services' configs, every BAROMETRE_* variable is a setting, the
  ClickHouse users are those ``barometre access clickhouse`` creates, appVersion is the package's.

helm is built by ``infra/tools.sh`` (``make test`` runs it) into .cache/tools/bin; without it these tests
skip with the reason, except under CI=true, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.clickhouse.access import ROLES as CLICKHOUSE_ROLES
from infra.clickhouse.access import user_name
from services.common import kafka
from services.common.names import Topic
from services.common.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "barometre"
EXAMPLES = ROOT / "deploy" / "examples"
CRD_SCHEMAS = ROOT / "deploy" / "schemas"
KUBERNETES_VERSION = "1.33"  # the oldest Kubernetes the chart is checked against (Chart.yaml: >=1.29)
SERVICES = ("ingest", "api", "scoring", "poller")


def _helm() -> str:
    local = ROOT / ".cache" / "tools" / "bin" / "helm"
    found = str(local) if local.exists() else shutil.which("helm")
    if found is None:
        reason = "helm is not built: run infra/tools.sh (make test does)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: the chart must be checked)", pytrace=False)
        pytest.skip(reason)
    return found


def _run(*args: str) -> str:
    done = subprocess.run([_helm(), *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"helm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@cache
def render(*sets: str) -> tuple[dict[str, Any], ...]:
    args = ["template", "brm", str(CHART), "--namespace", "barometre"]
    for s in sets:
        args += ["--set", s]
    return tuple(d for d in yaml.safe_load_all(_run(*args)) if d)


def _by_kind(docs: Iterable[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@cache
def _crd_validator(api_version: str, kind: str) -> Any:
    import jsonschema

    group, version = api_version.split("/")
    path = CRD_SCHEMAS / group / f"{kind.lower()}_{version}.json"
    assert path.exists(), f"no schema for {api_version} {kind} in deploy/schemas/ ({path.name})"
    schema = json.loads(path.read_text())
    return jsonschema.Draft7Validator(schema)


def schema_errors(doc: dict[str, Any]) -> list[str]:
    """What is wrong with ``doc`` against its kind's schema (empty: valid)."""
    import kubernetes_validate

    api_version, kind = doc["apiVersion"], doc["kind"]
    if "/" in api_version and api_version.split("/")[0].endswith((".strimzi.io", ".altinity.com")):
        errors = _crd_validator(api_version, kind).iter_errors(doc)
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'/'.join(map(str, exc.absolute_path))}: {exc.message}"]
    return []


def test_chart_lints() -> None:
    out = _run("lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in out


VALUE_SETS = [
    (),
    ("strimzi.enabled=false", "poller.enabled=false", "migrations.enabled=false"),
    (
        "scoring.replicas=8",
        "kafka.partitions=24",
        "clickhouse.cluster=barometre",
        "kafka.topicPrefix=staging.",
    ),
    (
        "image.tag=0.2.0",
        "api.service.type=LoadBalancer",
        "extraEnv[0].name=BAROMETRE_LOG_LEVEL",
        "extraEnv[0].value=DEBUG",
    ),
]


@pytest.mark.parametrize("sets", VALUE_SETS, ids=lambda s: ",".join(s) or "defaults")
def test_rendered_resources_match_their_schemas(sets: tuple[str, ...]) -> None:
    docs = render(*sets)
    assert docs
    problems = {f"{d['kind']}/{d['metadata']['name']}": schema_errors(d) for d in docs}
    assert {k: v for k, v in problems.items() if v} == {}


def test_examples_match_the_operators_schemas() -> None:
    docs = [d for f in sorted(EXAMPLES.rglob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    kinds = {d["kind"] for d in docs}
    assert {"Kafka", "KafkaNodePool", "ClickHouseInstallation", "ClickHouseKeeperInstallation"} <= kinds
    problems = {f"{d['kind']}/{d['metadata']['name']}": schema_errors(d) for d in docs}
    assert {k: v for k, v in problems.items() if v} == {}


def test_the_validation_can_fail() -> None:
    """A misspelt field and a wrong type are caught, in a Kubernetes kind and in an operator's kind."""
    deployment = next(d for d in render() if d["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {}
    assert schema_errors(broken)
    topic = next(d for d in render() if d["kind"] == "KafkaTopic")
    broken = json.loads(json.dumps(topic))
    broken["spec"]["partitions"] = "twelve"
    assert schema_errors(broken)
    chi = next(
        d
        for d in yaml.safe_load_all((EXAMPLES / "altinity" / "clickhouse.yaml").read_text())
        if d["kind"] == "ClickHouseInstallation"
    )
    chi["spec"]["configuration"]["clusters"][0]["layout"]["shardCount"] = 2
    assert schema_errors(chi)


def test_the_example_cluster_is_two_shards_of_two_replicas_with_three_keepers_and_three_brokers() -> None:
    docs = {d["kind"]: d for f in EXAMPLES.rglob("*.yaml") for d in yaml.safe_load_all(f.read_text()) if d}
    layout = docs["ClickHouseInstallation"]["spec"]["configuration"]["clusters"][0]["layout"]
    assert (layout["shardsCount"], layout["replicasCount"]) == (2, 2)
    assert (
        docs["ClickHouseKeeperInstallation"]["spec"]["configuration"]["clusters"][0]["layout"][
            "replicasCount"
        ]
        == 3
    )
    pool = docs["KafkaNodePool"]["spec"]
    assert pool["replicas"] == 3 and set(pool["roles"]) == {"broker", "controller"}
    config = docs["Kafka"]["spec"]["kafka"]["config"]
    assert config["min.insync.replicas"] == 2 and config["auto.create.topics.enable"] is False
    # The chart's defaults point at these examples.
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["kafka"]["bootstrap"] == f"{docs['Kafka']['metadata']['name']}-kafka-bootstrap:9092"
    assert values["strimzi"]["cluster"] == docs["Kafka"]["metadata"]["name"]
    assert (
        values["clickhouse"]["url"]
        == f"http://clickhouse-{docs['ClickHouseInstallation']['metadata']['name']}:8123"
    )


def _acl_set(user: dict[str, Any]) -> set[tuple[str, str, bool, frozenset[str]]]:
    return {
        (
            a["resource"]["type"],
            a["resource"]["name"],
            a["resource"]["patternType"] == "prefix",
            frozenset(op.upper() for op in a["operations"]),
        )
        for a in user["spec"]["authorization"]["acls"]
    }


@pytest.mark.parametrize("prefix", ["", "staging."])
def test_kafka_users_have_exactly_the_services_permissions(prefix: str) -> None:
    users = _by_kind(render(f"kafka.topicPrefix={prefix}"), "KafkaUser")
    settings = Settings(kafka_topic_prefix=prefix)
    wanted: dict[str, set[tuple[str, str, bool, frozenset[str]]]] = {}
    for p in kafka.service_permissions(settings):
        wanted.setdefault(p.user, set()).add((p.resource, p.name, p.prefixed, frozenset(p.operations)))
    assert set(users) == set(kafka.SERVICE_USERS.values())
    for name, user in users.items():
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        # Several grants on one resource add up: compare what each resource allows.
        got: dict[tuple[str, str, bool], set[str]] = {}
        for kind, res, prefixed, ops in _acl_set(user):
            got.setdefault((kind, res, prefixed), set()).update(ops)
        want: dict[tuple[str, str, bool], set[str]] = {}
        for kind, res, prefixed, ops in wanted[name]:
            want.setdefault((kind, res, prefixed), set()).update(ops)
        assert got == want, name


def test_kafka_topics_are_the_services_topics_with_their_settings() -> None:
    topics = {t["spec"]["topicName"]: t["spec"] for t in _by_kind(render(), "KafkaTopic").values()}
    settings = Settings()
    assert set(topics) == {settings.topic(t) for t in Topic}
    for topic in Topic:
        spec = topics[settings.topic(topic)]
        assert spec["partitions"] == settings.kafka_partitions
        assert spec["replicas"] == 3
        want = kafka.durable_configs(3, kafka._TOPIC_CONFIGS.get(topic, {}))
        assert {k: str(v) for k, v in spec["config"].items()} == want, topic


def _containers(docs: Iterable[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (d["metadata"]["name"], c)
        for d in docs
        if d["kind"] in ("Deployment", "Job")
        for c in d["spec"]["template"]["spec"]["containers"]
    ]


def test_every_barometre_variable_is_a_setting() -> None:
    fields = {f"BAROMETRE_{name.upper()}" for name in Settings.model_fields}
    access = {f"BAROMETRE_CLICKHOUSE_{r.upper()}_PASSWORD" for r in CLICKHOUSE_ROLES}  # read by `access`
    for sets in VALUE_SETS:
        for name, container in _containers(render(*sets)):
            unknown = {e["name"] for e in container["env"]} - fields - access
            assert not unknown, f"{name}: {unknown}"


def test_services_deployments() -> None:
    docs = render()
    deployments = _by_kind(docs, "Deployment")
    services = _by_kind(docs, "Service")
    pdbs = _by_kind(docs, "PodDisruptionBudget")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for svc in SERVICES:
        name = f"brm-barometre-{svc}"
        spec = deployments[name]["spec"]
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        port = values[svc]["port"]
        assert container["args"] == [svc]
        assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        env = {e["name"]: e for e in container["env"]}
        assert env[f"BAROMETRE_{svc.upper()}_PORT"]["value"] == str(port)
        assert env["BAROMETRE_CLICKHOUSE_USER"]["value"] == user_name(svc)
        # Secrets come from Kubernetes Secrets, never from values.
        for secret in (
            "BAROMETRE_CLICKHOUSE_PASSWORD",
            "BAROMETRE_KAFKA_SASL_PASSWORD",
            "BAROMETRE_BOOTSTRAP_TOKEN",
        ):
            assert "value" not in env[secret] and env[secret]["valueFrom"]["secretKeyRef"]["name"], secret
        assert env["BAROMETRE_KAFKA_SASL_USERNAME"]["value"] == kafka.SERVICE_USERS[svc]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert services[name]["spec"]["ports"][0]["port"] == port
        if svc == "poller":
            assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
            assert name not in pdbs
        else:
            assert spec["replicas"] == values[svc]["replicas"]
            assert pdbs[name]["spec"]["selector"] == spec["selector"]
    scoring = _by_kind(render("scoring.replicas=8"), "Deployment")["brm-barometre-scoring"]
    assert scoring["spec"]["replicas"] == 8
    assert scoring["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 60


def test_migration_jobs_run_before_install_and_upgrade_in_order() -> None:
    jobs = _by_kind(render(), "Job")
    access, migrate = jobs["brm-barometre-access"], jobs["brm-barometre-migrate"]
    for job in (access, migrate):
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    weights = [int(j["metadata"]["annotations"]["helm.sh/hook-weight"]) for j in (access, migrate)]
    assert weights[0] < weights[1]
    (a,) = access["spec"]["template"]["spec"]["containers"]
    (m,) = migrate["spec"]["template"]["spec"]["containers"]
    assert a["args"] == ["access", "clickhouse"] and m["args"] == ["migrate"]
    a_env = {e["name"] for e in a["env"]}
    assert {f"BAROMETRE_CLICKHOUSE_{r.upper()}_PASSWORD" for r in CLICKHOUSE_ROLES} <= a_env
    assert {e["name"]: e.get("value") for e in m["env"]}["BAROMETRE_CLICKHOUSE_USER"] == user_name("migrate")
    assert not _by_kind(render("migrations.enabled=false"), "Job")


def test_cluster_name_reaches_every_service() -> None:
    for name, container in _containers(render("clickhouse.cluster=barometre")):
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["BAROMETRE_CLICKHOUSE_CLUSTER"] == "barometre", name
    for name, container in _containers(render()):
        assert "BAROMETRE_CLICKHOUSE_CLUSTER" not in {e["name"] for e in container["env"]}, name


def test_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]
