"""Kafka plumbing shared by the services (thin: the maths never sees a broker).

Topics are declared in :class:`services.common.names.Topic`; :func:`ensure_topics` creates them with the
configured partitions and replication, so nobody relies on broker-side auto-creation defaults.

Durability: the replication factor is ``min(3, brokers)`` unless ``settings.kafka_replication`` forces one
(:func:`replication_factor`), and a topic with three replicas or more gets ``min.insync.replicas=2``: with
``acks=all`` a write is then on two brokers before it is acknowledged, and one broker may be down.

Security: every Kafka client of the services is built with :func:`client_security` (kafka-python and
aiokafka take the same arguments) or, for Faust, :func:`faust_credentials`: the one place where
``settings.kafka_security_protocol`` and the SASL user become client arguments.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from kafka import KafkaConsumer
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    NewTopic,
    ResourcePattern,
    ResourceType,
    UserScramCredentialUpsertion,
)
from kafka.errors import (
    ClusterAuthorizationFailedError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
)

from services.common.names import Topic
from services.common.settings import Settings

if TYPE_CHECKING:
    import faust

log = logging.getLogger(__name__)

#: ``settings.kafka_replication`` (and a NewTopic's replication factor given to :func:`create_topics`)
#: meaning "min(3, brokers in the cluster)".
AUTO_REPLICATION = 0
#: The replication factor aimed at on a cluster large enough, and the in-sync replicas it then requires.
TARGET_REPLICATION = 3
MIN_INSYNC_REPLICAS = 2


class DurabilityError(RuntimeError):
    """A topic is less replicated than the cluster allows (the scoring worker refuses to start)."""


def client_security(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of a kafka-python or aiokafka client (producer, consumer, admin) for the
    security settings: nothing beyond the protocol for PLAINTEXT; the SASL mechanism and user otherwise
    (and, for SASL_SSL, a TLS context trusting the system's certificate authorities)."""
    protocol = settings.kafka_security_protocol
    kwargs: dict[str, Any] = {"security_protocol": protocol}
    if protocol.startswith("SASL_"):
        if not settings.kafka_sasl_username:
            raise ValueError(f"BAROMETRE_KAFKA_SASL_USERNAME is needed with {protocol}")
        kwargs.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value(),
        )
    if protocol.endswith("SSL"):
        kwargs["ssl_context"] = ssl.create_default_context()
    return kwargs


def faust_credentials(settings: Settings) -> faust.SASLCredentials | None:
    """Faust's ``broker_credentials`` for the security settings (None for PLAINTEXT)."""
    import faust

    kwargs = client_security(settings)
    if "sasl_mechanism" not in kwargs:
        return None
    return faust.SASLCredentials(
        username=kwargs["sasl_plain_username"],
        password=kwargs["sasl_plain_password"],
        mechanism=kwargs["sasl_mechanism"],
        ssl_context=kwargs.get("ssl_context"),
    )


def admin_client(
    settings: Settings, client_id: str = "barometre-admin", timeout_s: float = 10.0
) -> KafkaAdminClient:
    """A kafka-python admin client for ``settings`` (bootstrap and security); the caller closes it."""
    ms = int(timeout_s * 1000)
    return KafkaAdminClient(
        bootstrap_servers=_split(settings.kafka_bootstrap),
        client_id=client_id,
        request_timeout_ms=ms,
        bootstrap_timeout_ms=ms,
        **client_security(settings),
    )


def count_brokers(admin: KafkaAdminClient) -> int:
    """The brokers the cluster lists now (fenced ones left out)."""
    brokers = admin.describe_cluster().get("brokers", [])
    return max(1, sum(1 for b in brokers if not b.get("is_fenced", False)))


def replication_factor(settings: Settings, admin: KafkaAdminClient | None = None) -> int:
    """The replication factor of the topics barometre creates: ``settings.kafka_replication`` when set,
    else ``min(3, brokers)`` (asking the cluster through ``admin``, or a client of its own)."""
    if settings.kafka_replication != AUTO_REPLICATION:
        return settings.kafka_replication
    if admin is not None:
        return min(TARGET_REPLICATION, count_brokers(admin))
    own = admin_client(settings, "barometre-replication")
    try:
        return min(TARGET_REPLICATION, count_brokers(own))
    finally:
        own.close()


def durable_configs(factor: int, configs: dict[str, str] | None = None) -> dict[str, str]:
    """``configs`` plus ``min.insync.replicas=2`` when ``factor`` is 3 or more (unless already set)."""
    out = dict(configs or {})
    if factor >= TARGET_REPLICATION:
        out.setdefault("min.insync.replicas", str(MIN_INSYNC_REPLICAS))
    return out


# The dead-letter topic keeps its records for 30 days: long enough to look at and replay them.
_TOPIC_CONFIGS: dict[Topic, dict[str, str]] = {
    Topic.ACCOUNT_SNAPSHOTS: {"retention.ms": "-1"},  # the log is the truth: `barometre rebuild` replays it
    Topic.ACCOUNT_SNAPSHOTS_DLQ: {"retention.ms": str(30 * 24 * 3600 * 1000)},
    Topic.ALERTS: {"retention.ms": str(365 * 24 * 3600 * 1000)},
    Topic.INCIDENTS: {"retention.ms": str(365 * 24 * 3600 * 1000)},
    # Candidates are consumed within seconds; a week covers any outage of the alert stage.
    Topic.ALERT_CANDIDATES: {"retention.ms": str(7 * 24 * 3600 * 1000)},
}


def _split(bootstrap: str) -> list[str]:
    return [b.strip() for b in bootstrap.split(",") if b.strip()]


def _topics(settings: Settings, timeout_s: float) -> set[str]:
    ms = int(timeout_s * 1000)
    consumer = KafkaConsumer(
        bootstrap_servers=_split(settings.kafka_bootstrap),
        request_timeout_ms=max(ms, 1000),
        bootstrap_timeout_ms=max(ms, 1000),
        enable_auto_commit=False,  # no group: nothing to commit (and no warning saying so)
        **client_security(settings),
    )
    try:
        return set(consumer.topics())
    finally:
        consumer.close()


async def check_kafka(target: Settings | str, timeout_s: float = 2.0) -> None:
    """Raise unless the brokers answer a metadata request: those of ``target``'s settings (with its
    security settings), or a bare bootstrap string (PLAINTEXT)."""
    settings = target if isinstance(target, Settings) else Settings(kafka_bootstrap=target)
    await asyncio.to_thread(_topics, settings, timeout_s)


def ensure_topics(
    settings: Settings, topics: Iterable[Topic] = tuple(Topic), timeout_s: float = 10.0
) -> list[str]:
    """Create the missing ``topics``; return the names created now. Raises when Kafka does not answer
    within about ``timeout_s``."""
    return create_topics(
        settings,
        [
            NewTopic(
                name=settings.topic(topic),
                num_partitions=settings.kafka_partitions,
                replication_factor=settings.kafka_replication,  # 0: min(3, brokers), see create_topics
                topic_configs=_TOPIC_CONFIGS.get(topic, {}),
            )
            for topic in topics
        ],
        timeout_s,
    )


def topic_partitions(settings: Settings, topic: Topic, timeout_s: float = 10.0) -> int | None:
    """How many partitions ``topic`` has in the cluster, or None when it does not exist."""
    admin = admin_client(settings, timeout_s=timeout_s)
    try:
        name = settings.topic(topic)
        if name not in set(admin.list_topics()):
            return None
        (described,) = admin.describe_topics([name])
        return len(described["partitions"])
    finally:
        admin.close()


def create_topics(settings: Settings, topics: Iterable[NewTopic], timeout_s: float = 10.0) -> list[str]:
    """Create those of ``topics`` that do not exist; return the names created now (a topic another
    process creates in between is left to it). Raises when Kafka does not answer within about
    ``timeout_s``.

    A replication factor of 0 (:data:`AUTO_REPLICATION`) becomes ``min(3, brokers)``; a topic with 3
    replicas or more gets ``min.insync.replicas=2`` unless its configs say otherwise. A topic this
    client is not allowed to create (Kafka ACLs: the services' users may not create the shared topics,
    ``barometre access kafka`` does, as the administrator) is skipped with a log line."""
    admin = admin_client(settings, timeout_s=timeout_s)
    try:
        existing = set(admin.list_topics())
        wanted = [new for new in topics if new.name not in existing]
        factor = replication_factor(settings, admin) if wanted else 0
        created = []
        for new in wanted:
            replicas = factor if new.replication_factor == AUTO_REPLICATION else new.replication_factor
            topic = NewTopic(
                name=new.name,
                num_partitions=new.num_partitions,
                replication_factor=replicas,
                replica_assignments=new.replica_assignments,
                topic_configs=durable_configs(replicas, new.topic_configs),
            )
            try:
                # Returning once every partition has a leader: a client (Faust's producer, the durability
                # check) that reads the metadata next sees the topic whole.
                admin.create_topics([topic], wait_for_metadata=True)
                created.append(new.name)
            except TopicAlreadyExistsError:  # another process created it in between
                pass
            except (TopicAuthorizationFailedError, ClusterAuthorizationFailedError):
                log.info("not allowed to create topic %s: left to the administrator", new.name)
        return created
    finally:
        admin.close()


def describe_replication(settings: Settings, topic: str, timeout_s: float = 10.0) -> tuple[int, int]:
    """(smallest replica count of ``topic``'s partitions, brokers in the cluster); (0, brokers) when
    the topic does not exist or cannot be described. A topic created a moment ago, whose partitions
    the metadata does not list yet, is asked for again until ``timeout_s``."""
    admin = admin_client(settings, "barometre-durability", timeout_s)
    deadline = time.monotonic() + timeout_s
    try:
        brokers = count_brokers(admin)
        while True:
            described = [t for t in admin.describe_topics([topic]) if t.get("error_code", 0) == 0]
            partitions = [p for t in described for p in t.get("partitions") or []]
            if partitions or not described or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        replicas = min((len(p.get("replica_nodes") or []) for p in partitions), default=0)
        return replicas, brokers
    finally:
        admin.close()


def check_durability(settings: Settings, topic: Topic = Topic.ACCOUNT_SNAPSHOTS) -> None:
    """Raise :class:`DurabilityError` when ``topic`` has a single replica on a cluster of several
    brokers: one broker lost would lose acknowledged events (the scoring worker refuses to start)."""
    name = settings.topic(topic)
    replicas, brokers = describe_replication(settings, name)
    if replicas == 1 and brokers > 1:
        raise DurabilityError(
            f"topic {name} has replication factor 1 on a cluster of {brokers} brokers: a broker lost "
            f"would lose acknowledged snapshots. Recreate it with replication factor "
            f"{min(TARGET_REPLICATION, brokers)} (or add replicas with kafka-reassign-partitions), and "
            "leave BAROMETRE_KAFKA_REPLICATION unset (0: min(3, brokers)) so that new topics get it."
        )


# --------------------------------------------------------------------------------------------------
# Access control: one Kafka user per service, and the ACLs that let each do its job and no more
# --------------------------------------------------------------------------------------------------

#: The Kafka user of each service (SCRAM-SHA-512 in the production compose), by role.
SERVICE_USERS: dict[str, str] = {
    "ingest": "barometre-ingest",
    "poller": "barometre-poller",
    "scoring": "barometre-scoring",
    "api": "barometre-api",
}

#: The api's webhook dispatcher's consumer group (services.api.webhooks.WEBHOOK_CONSUMER_GROUP; a test
#: checks they agree: common code does not import the api).
WEBHOOK_GROUP = "barometre-webhooks"


@dataclass(frozen=True)
class Permission:
    """``operations`` allowed to ``user`` on a topic or consumer group (``prefixed``: every name that
    starts with ``name``)."""

    user: str
    resource: Literal["topic", "group"]
    name: str
    operations: tuple[str, ...]
    prefixed: bool = False


def service_permissions(settings: Settings, users: Mapping[str, str] | None = None) -> list[Permission]:
    """What each service may do, for ``settings``' topic names and groups (docs/OPERATIONS.md):

    - ingest and poller write snapshots;
    - the scoring worker reads snapshots, reads and writes alert candidates, writes alerts, incidents
      and dead letters, owns every topic named after its group (Faust's changelogs, repartition and
      leader topics: it creates them) and uses its consumer group;
    - the api reads alerts and incidents, uses the webhook dispatcher's consumer group, and describes
      the snapshots topic and the scoring group (how far behind the worker is: ``GET /v1/status``).

    ``Describe`` comes with every grant (clients read a topic's metadata before using it). Creating the
    shared topics is left to the administrator (``barometre access kafka``)."""
    u = {**SERVICE_USERS, **(users or {})}
    t = settings.topic
    group = settings.scoring_group()
    read, write = ("READ", "DESCRIBE"), ("WRITE", "DESCRIBE")
    return [
        Permission(u["ingest"], "topic", t(Topic.ACCOUNT_SNAPSHOTS), write),
        Permission(u["poller"], "topic", t(Topic.ACCOUNT_SNAPSHOTS), write),
        Permission(u["scoring"], "topic", t(Topic.ACCOUNT_SNAPSHOTS), read),
        Permission(u["scoring"], "topic", t(Topic.ALERT_CANDIDATES), ("READ", "WRITE", "DESCRIBE")),
        Permission(u["scoring"], "topic", t(Topic.ALERTS), write),
        Permission(u["scoring"], "topic", t(Topic.INCIDENTS), write),
        Permission(u["scoring"], "topic", t(Topic.ACCOUNT_SNAPSHOTS_DLQ), write),
        Permission(u["scoring"], "topic", f"{group}-", ("ALL",), prefixed=True),
        Permission(u["scoring"], "group", group, read),
        Permission(u["api"], "topic", t(Topic.ALERTS), read),
        Permission(u["api"], "topic", t(Topic.INCIDENTS), read),
        Permission(u["api"], "group", settings.kafka_topic_prefix + WEBHOOK_GROUP, read),
        # GET /v1/status: the snapshots' end offsets and the scoring group's committed ones (lag.py).
        Permission(u["api"], "topic", t(Topic.ACCOUNT_SNAPSHOTS), ("DESCRIBE",)),
        Permission(u["api"], "group", group, ("DESCRIBE",)),
    ]


def acls(permissions: Iterable[Permission]) -> list[ACL]:
    """kafka-python ACL objects (ALLOW, any host) for ``permissions``."""
    out = []
    for p in permissions:
        pattern = ResourcePattern(
            ResourceType.TOPIC if p.resource == "topic" else ResourceType.GROUP,
            p.name,
            ACLResourcePatternType.PREFIXED if p.prefixed else ACLResourcePatternType.LITERAL,
        )
        for operation in p.operations:
            out.append(ACL(f"User:{p.user}", "*", ACLOperation[operation], ACLPermissionType.ALLOW, pattern))
    return out


def apply_access(
    settings: Settings,
    passwords: Mapping[str, str],
    users: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    """As the administrator (``settings``' SASL user, a super user): create the topics, set the SCRAM
    password of each service user in ``passwords`` (role -> password; roles left out keep theirs) and
    create the ACLs of :func:`service_permissions`. Idempotent; returns what it did."""
    u = {**SERVICE_USERS, **(users or {})}
    unknown = set(passwords) - set(u)
    if unknown:
        raise ValueError(f"unknown service(s) {sorted(unknown)}: expected {sorted(u)}")
    created = ensure_topics(settings, timeout_s=timeout_s)
    admin = admin_client(settings, "barometre-access", timeout_s)
    try:
        if passwords:
            mechanism = settings.kafka_sasl_mechanism
            if not mechanism.startswith("SCRAM"):
                raise ValueError(f"service users are SCRAM users, not {mechanism}")
            failed = {
                user: error
                for user, error in admin.alter_user_scram_credentials(
                    [UserScramCredentialUpsertion(u[role], mechanism, pw) for role, pw in passwords.items()]
                ).items()
                if error
            }
            if failed:
                raise RuntimeError(f"setting SCRAM credentials failed: {failed}")
        wanted = acls(service_permissions(settings, u))
        result = admin.create_acls(wanted)
        if result["failed"]:
            raise RuntimeError(f"creating ACLs failed: {result['failed']}")
        return {"topics_created": created, "users": sorted(u[r] for r in passwords), "acls": len(wanted)}
    finally:
        admin.close()
