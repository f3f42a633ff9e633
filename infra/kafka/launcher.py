"""Runs Apache Kafka in KRaft mode on this machine from Apache's own jars, without containers.

Responsibilities:

- resolve the broker's jars pinned in ``infra/kafka/pom.xml`` with Maven, once, into a cache directory
  (:func:`ensure_jars`; ``<repo>/.cache/kafka-<version>/libs`` by default, see :func:`jars_dir`);
- say exactly what to install when Java or Maven is missing (:func:`check_prerequisites`);
- lay out, format, start, supervise and stop one combined broker+controller node, or a cluster of
  several on one host for fault tests (:class:`KafkaCluster`), and report a node's own log when it fails.

Layout of a cluster's ``base_dir``::

    cluster.json            cluster id and node count, written once: data survives restarts
    node-<i>/server.properties
    node-<i>/data/          log.dirs (KRaft metadata log and topic partitions)
    node-<i>/logs/server.log
    node-<i>/console.log    the JVM's stdout/stderr (normally empty)

Security (``sasl_users``): by default every listener is PLAINTEXT and anyone may do anything. With
``sasl_users`` (a mapping user -> password that must hold ``admin``) the client listener becomes
SASL_PLAINTEXT with SCRAM-SHA-512, the users are written into the metadata when the storage is formatted
(``kafka-storage format --add-scram``), the brokers talk to each other as ``admin`` (SCRAM), the
controller listener asks for SASL/PLAIN as ``admin``, and the ``StandardAuthorizer`` allows nothing
without an ACL (``allow.everyone.if.no.acl.found=false``) except to the super user ``User:admin``: the
same layout as the production docker-compose.yml. :meth:`KafkaCluster.client_security` gives a client's
arguments for a user.

Ports: node ``i`` (0-based, also its ``node.id``) serves clients on ``port + i`` and its controller
listener on ``controller_port + i``, where ``controller_port`` defaults to ``port + 100``
(9092 -> 9192; tests use 19092 -> 19192 and 29092.. -> 29192..).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import IO

from infra.process import die_with_parent

__all__ = [
    "CONTROLLER_PORT_OFFSET",
    "KafkaCluster",
    "KafkaError",
    "KafkaStartError",
    "PrerequisiteError",
    "check_prerequisites",
    "default_cache_dir",
    "ensure_jars",
    "jars_dir",
    "kafka_version",
]

KAFKA_DIR = Path(__file__).resolve().parent
POM = KAFKA_DIR / "pom.xml"
LOG4J_CONFIG = KAFKA_DIR / "log4j2.properties"
_REPO_ROOT = KAFKA_DIR.parent.parent

#: Environment variable that moves the cache root (the jars go to <root>/kafka-<version>/libs).
CACHE_ENV = "BAROMETRE_KAFKA_CACHE"
#: Environment variable giving the brokers' log level (WARN by default).
LOG_LEVEL_ENV = "BAROMETRE_KAFKA_LOG_LEVEL"
#: Controller listeners sit this far above the client ports unless told otherwise.
CONTROLLER_PORT_OFFSET = 100
MIN_JAVA = 17

_MARKER = ".barometre-complete"
#: With ``sasl_users``: the brokers' own user, and the only super user.
SUPER_USER = "admin"
SCRAM_MECHANISM = "SCRAM-SHA-512"
_SASL_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
_SASL_PASSWORD_RE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
_HEAP_RE = re.compile(r"^[1-9][0-9]*[kKmMgG]?$")


class KafkaError(RuntimeError):
    """Base class of the launcher's errors."""


class PrerequisiteError(KafkaError):
    """A tool the local broker needs (Java 17+, Maven) is missing; the message says what to install."""


class KafkaStartError(KafkaError):
    """A node died, could not be formatted, or did not serve metadata in time; the message has its log."""


# --------------------------------------------------------------------------------------------------
# Prerequisites and jars
# --------------------------------------------------------------------------------------------------


@cache
def kafka_version() -> str:
    """The Kafka version pinned in pom.xml (the ``kafka.version`` property), the single place it is set."""
    root = ET.parse(POM).getroot()  # noqa: S314 - our own file, not untrusted input
    node = root.find("m:properties/m:kafka.version", _POM_NS)
    if node is None or not (node.text or "").strip():
        raise KafkaError(f"{POM} has no <kafka.version> property")
    return (node.text or "").strip()


def default_cache_dir() -> Path:
    """The cache root: ``$BAROMETRE_KAFKA_CACHE``, else ``<repo>/.cache`` (git-ignored).

    Outside a source checkout (an installed package) the repository root is meaningless, so the user's
    cache directory is used instead. The jars themselves go to :func:`jars_dir`.
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser().resolve()
    if (_REPO_ROOT / "pyproject.toml").is_file():
        return _REPO_ROOT / ".cache"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "barometre"


def jars_dir(cache_dir: Path | None = None) -> Path:
    """``<cache root>/kafka-<version>/libs``: the directory of the pinned version's jars.

    One directory per version, owned by this module alone: a shared cache root (the project's
    ``.cache``) may hold other tools' files, and changing the pinned version keeps the old jars apart.
    """
    root = Path(cache_dir).expanduser().resolve() if cache_dir is not None else default_cache_dir()
    return root / f"kafka-{kafka_version()}" / "libs"


def _java_executable() -> str | None:
    # JAVA_HOME wins, as in Kafka's own scripts, so a second JDK can be chosen without touching PATH.
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("java")


@cache
def _java_major(java: str) -> int | None:
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    # Java 8 and older call themselves "1.8".
    return int(match.group(2) or 0) if major == 1 else major


_JAVA_HINT = "install it with `apt-get install openjdk-17-jre-headless` (or use `docker compose up`)"
_MAVEN_HINT = "install it with `apt-get install maven` (or use `docker compose up`)"


def check_prerequisites(require_maven: bool = True) -> None:
    """Raise :class:`PrerequisiteError` naming what to install if Java 17+ (or Maven) is missing.

    Maven is only needed to fill the jar cache; pass ``require_maven=False`` once it is filled.
    """
    java = _java_executable()
    if java is None:
        raise PrerequisiteError(f"Java {MIN_JAVA} is missing: {_JAVA_HINT}")
    major = _java_major(java)
    if major is None:
        raise PrerequisiteError(
            f"Java {MIN_JAVA} is missing (`{java} -version` did not answer): {_JAVA_HINT}"
        )
    if major < MIN_JAVA:
        raise PrerequisiteError(
            f"Java {MIN_JAVA} is missing (`{java}` is Java {major}; Kafka 4 needs {MIN_JAVA}+): {_JAVA_HINT}"
        )
    if require_maven and shutil.which("mvn") is None:
        raise PrerequisiteError(f"Maven is missing: {_MAVEN_HINT}")


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def _cached_jars(libs: Path) -> list[Path] | None:
    """The cache's jars if its marker matches the current pom and every jar it lists is there."""
    try:
        marker = json.loads((libs / _MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("pom_sha256") != _pom_digest():
        return None
    names = marker.get("jars")
    if not isinstance(names, list) or not names:
        return None
    jars = [libs / str(name) for name in names]
    return jars if all(jar.is_file() for jar in jars) else None


def ensure_jars(cache_dir: Path | None = None) -> str:
    """Return the broker's Java classpath, resolving the jars with Maven first if the cache lacks them.

    ``cache_dir`` is the cache root (default :func:`default_cache_dir`); the jars go to
    :func:`jars_dir` below it.

    The cache is complete when its marker file records the current pom's digest and every jar it lists
    exists; then this is a few file checks. Otherwise ``mvn dependency:copy-dependencies`` fills a
    temporary directory that replaces the cache in one rename, under a file lock, so that an interrupted
    or concurrent resolution never leaves a half-filled cache behind.
    """
    libs = jars_dir(cache_dir)
    jars = _cached_jars(libs)
    if jars is None:
        check_prerequisites(require_maven=True)
        libs.parent.mkdir(parents=True, exist_ok=True)
        with open(libs.parent / f".{libs.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            jars = _cached_jars(libs)  # another process may have filled it while we waited
            if jars is None:
                jars = _resolve_jars(libs)
    return os.pathsep.join(str(jar) for jar in sorted(jars))


def _resolve_jars(libs: Path) -> list[Path]:
    staging = libs.parent / f".{libs.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        "mvn", "-q", "-B", "-f", str(POM),
        "dependency:copy-dependencies", f"-DoutputDirectory={staging}",
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise KafkaError(f"`{' '.join(cmd)}` did not finish in {exc.timeout:.0f} s") from exc
    names = sorted(p.name for p in staging.glob("*.jar")) if staging.is_dir() else []
    if proc.returncode != 0 or not names:
        shutil.rmtree(staging, ignore_errors=True)
        output = _tail_text(proc.stdout + proc.stderr, 40)
        raise KafkaError(f"resolving the Kafka jars failed (`{' '.join(cmd)}`):\n{output}")
    (staging / _MARKER).write_text(
        json.dumps({"kafka_version": kafka_version(), "pom_sha256": _pom_digest(), "jars": names}, indent=1)
    )
    if libs.exists():
        _remove_old_jars(libs)
    staging.rename(libs)
    return [libs / name for name in names]


def _remove_old_jars(libs: Path) -> None:
    # Only ever delete a directory of jars: a path mistaken for ours must not lose anything else.
    strangers = [p.name for p in libs.iterdir() if p.name != _MARKER and not p.name.endswith(".jar")]
    if strangers or not libs.is_dir():
        raise KafkaError(f"{libs} is not a jar cache (it holds {strangers[:5]}); move it away or use another")
    shutil.rmtree(libs)


# --------------------------------------------------------------------------------------------------
# Child processes must not outlive us
# --------------------------------------------------------------------------------------------------

_live_clusters: set[KafkaCluster] = set()
_live_lock = threading.Lock()
_atexit_registered = False


def _stop_live_clusters() -> None:
    with _live_lock:
        # A forked child (multiprocessing) inherits this set and the atexit hook: the JVMs are not its own.
        clusters = [c for c in _live_clusters if c._owner_pid == os.getpid()]
    for cluster in clusters:
        with contextlib.suppress(Exception):
            cluster.stop(timeout=15)


def _register_live(cluster: KafkaCluster) -> None:
    global _atexit_registered
    with _live_lock:
        _live_clusters.add(cluster)
        if not _atexit_registered:
            atexit.register(_stop_live_clusters)
            _atexit_registered = True


def _unregister_live(cluster: KafkaCluster) -> None:
    with _live_lock:
        _live_clusters.discard(cluster)


# --------------------------------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------------------------------


def _new_cluster_id() -> str:
    # Kafka's Uuid.toString: URL-safe base64 of 16 random bytes, unpadded. Like Kafka, avoid a leading
    # "-" which command-line parsers would take for an option.
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _tail_text(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _tail_file(path: Path, lines: int = 40) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            return _tail_text(fh.read().decode("utf-8", "replace"), lines)
    except OSError:
        return ""


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as Kafka sets it, so that a port in TIME_WAIT after our own restart counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class KafkaCluster:
    """One or several combined broker+controller KRaft nodes on one host, under ``base_dir``.

    Responsible for the nodes' configuration, one-time storage formatting (the cluster id is kept in
    ``base_dir`` so data survives restarts), the JVM processes and their supervision: :meth:`start`
    returns only once every node serves metadata, and raises :class:`KafkaStartError` with the tail of
    the node's log otherwise. See the module docstring for directories and ports.

    ``cache_dir`` is the jar cache root given to :func:`ensure_jars`; ``extra_config`` is added to (and
    overrides) every node's server.properties. ``sasl_users`` turns on SASL/SCRAM and ACLs (module
    docstring); a cluster's users are fixed when its storage is first formatted.
    """

    def __init__(
        self,
        base_dir: Path,
        nodes: int = 1,
        host: str = "127.0.0.1",
        port: int = 9092,
        heap: str = "512m",
        cache_dir: Path | None = None,
        *,
        controller_port: int | None = None,
        num_partitions: int = 4,
        extra_config: Mapping[str, str | int] | None = None,
        sasl_users: Mapping[str, str] | None = None,
    ) -> None:
        if nodes < 1:
            raise ValueError("nodes must be at least 1")
        if sasl_users is not None:
            if SUPER_USER not in sasl_users:
                raise ValueError(f"sasl_users must hold the super user {SUPER_USER!r}")
            for name, password in sasl_users.items():
                # Written into server.properties (JAAS) and a command line: keep them plain.
                if not (_SASL_NAME_RE.match(name) and _SASL_PASSWORD_RE.match(password)):
                    raise ValueError(f"SASL user {name!r}: names and passwords are [A-Za-z0-9._-]+")
        if not _HEAP_RE.match(heap):
            raise ValueError(f"heap must look like 512m or 1g, not {heap!r}")
        self.base_dir = Path(base_dir).resolve()
        self.nodes = nodes
        self.host = host
        self.port = port
        self.controller_base_port = (
            port + CONTROLLER_PORT_OFFSET if controller_port is None else controller_port
        )
        self.heap = heap
        self.cache_dir = cache_dir
        self.num_partitions = num_partitions
        self.extra_config = {k: str(v) for k, v in (extra_config or {}).items()}
        self.sasl_users = dict(sasl_users) if sasl_users is not None else None
        overlap = set(self._client_ports()) & set(self._controller_ports())
        if overlap:
            raise ValueError(f"client and controller ports overlap: {sorted(overlap)}")
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._consoles: dict[int, IO[bytes]] = {}
        self._lock = threading.RLock()
        self._owner_pid = os.getpid()

    # -- addresses and paths -----------------------------------------------------------------------

    def _client_ports(self) -> list[int]:
        return [self.port + i for i in range(self.nodes)]

    def _controller_ports(self) -> list[int]:
        return [self.controller_base_port + i for i in range(self.nodes)]

    def client_port(self, node: int) -> int:
        """Port on which node ``node`` serves clients."""
        return self._client_ports()[self._check_node(node)]

    def controller_port(self, node: int) -> int:
        """Port of node ``node``'s controller (Raft) listener."""
        return self._controller_ports()[self._check_node(node)]

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` of every node, comma-separated, as Kafka clients take it."""
        return ",".join(f"{self.host}:{p}" for p in self._client_ports())

    def node_dir(self, node: int) -> Path:
        """Directory of node ``node``: its config, data and logs."""
        return self.base_dir / f"node-{self._check_node(node)}"

    def log_file(self, node: int) -> Path:
        """The broker's own log (log4j2), where failures are explained."""
        return self.node_dir(node) / "logs" / "server.log"

    def _check_node(self, node: int) -> int:
        if not 0 <= node < self.nodes:
            raise IndexError(f"node {node} does not exist (nodes are 0..{self.nodes - 1})")
        return node

    # -- state -------------------------------------------------------------------------------------

    def is_running(self) -> bool:
        """True when every node's JVM is alive."""
        return len(self.running_nodes()) == self.nodes

    def running_nodes(self) -> list[int]:
        """Indices of the nodes whose JVM is alive."""
        with self._lock:
            return sorted(i for i, proc in self._procs.items() if proc.poll() is None)

    @property
    def cluster_id(self) -> str:
        """The KRaft cluster id, created with the cluster's first start and kept in base_dir."""
        return self._load_or_create_identity()

    def _load_or_create_identity(self) -> str:
        path = self.base_dir / "cluster.json"
        if path.is_file():
            identity = json.loads(path.read_text())
            if identity.get("nodes") != self.nodes:
                raise KafkaStartError(
                    f"{self.base_dir} holds a {identity.get('nodes')}-node cluster, not {self.nodes} nodes: "
                    "use another directory or the same node count"
                )
            return str(identity["cluster_id"])
        self.base_dir.mkdir(parents=True, exist_ok=True)
        cluster_id = _new_cluster_id()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"cluster_id": cluster_id, "nodes": self.nodes}, indent=1) + "\n")
        tmp.replace(path)
        return cluster_id

    # -- configuration -----------------------------------------------------------------------------

    def server_properties(self, node: int) -> dict[str, str]:
        """The server.properties of node ``node``: small-machine settings for a local or test broker."""
        self._check_node(node)
        rf = min(3, self.nodes)
        min_isr = max(1, rf - 1)
        voters = ",".join(f"{i}@{self.host}:{p}" for i, p in enumerate(self._controller_ports()))
        client = "SASL_PLAINTEXT" if self.sasl_users is not None else "PLAINTEXT"
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node),
            "controller.quorum.voters": voters,
            "listeners": f"{client}://{self.host}:{self.client_port(node)},"
            f"CONTROLLER://{self.host}:{self.controller_port(node)}",
            "advertised.listeners": f"{client}://{self.host}:{self.client_port(node)}",
            "listener.security.protocol.map": f"{client}:{client},CONTROLLER:{client}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": client,
            "log.dirs": str(self.node_dir(node) / "data"),
            "num.partitions": str(self.num_partitions),
            "default.replication.factor": str(rf),
            # With 3 nodes, acks=all survives one node down and still means two copies.
            "min.insync.replicas": str(min_isr),
            "offsets.topic.replication.factor": str(rf),
            "transaction.state.log.replication.factor": str(rf),
            "transaction.state.log.min.isr": str(min_isr),
            "share.coordinator.state.topic.replication.factor": str(rf),
            "share.coordinator.state.topic.min.isr": str(min_isr),
            # The internal topics' default of 50 partitions each makes the first consumer group (and
            # every test session's) wait for 50 leader elections on a 2-core machine.
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.num.partitions": "8",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            # The log is the truth (DESIGN.md): keep events until a topic says otherwise. Time-based
            # retention would also delete historical imports at once, their timestamps being years old.
            "log.retention.ms": "-1",
            # Fewer threads than the defaults (3 network, 8 I/O): two cores, several JVMs.
            "num.network.threads": "2",
            "num.io.threads": "4",
        }
        if self.nodes > 1:
            # The controller keeps a stopped broker's session until it times out, even after a clean
            # shutdown, and refuses the broker's restart until then (DUPLICATE_BROKER_REGISTRATION);
            # a crashed broker stays a replica leader as long. Shorter than the 9 s default so that
            # fault tests restart and fail over sooner; all nodes share one host, so heartbeats are cheap.
            props["broker.heartbeat.interval.ms"] = "1000"
            props["broker.session.timeout.ms"] = "5000"
        if self.sasl_users is not None:
            props.update(self._security_properties())
        props.update(self.extra_config)
        return props

    def _security_properties(self) -> dict[str, str]:
        """SASL/SCRAM on the client listener, SASL/PLAIN on the controller's, ACLs on (module docstring)."""
        assert self.sasl_users is not None
        password = self.sasl_users[SUPER_USER]
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        return {
            # The brokers and clients: SCRAM users, stored in the cluster metadata (format --add-scram).
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": (
                f'{scram} required username="{SUPER_USER}" password="{password}";'
            ),
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            # The controllers cannot read SCRAM credentials before the metadata log is up: PLAIN, with
            # the one user in the JAAS configuration.
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": (
                f'{plain} required username="{SUPER_USER}" password="{password}" '
                f'user_{SUPER_USER}="{password}";'
            ),
            "sasl.mechanism.controller.protocol": "PLAIN",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{SUPER_USER}",
            "allow.everyone.if.no.acl.found": "false",
            "auto.create.topics.enable": "false",
        }

    def client_security(self, user: str = SUPER_USER) -> dict[str, str]:
        """kafka-python / aiokafka arguments to connect as ``user`` (empty without ``sasl_users``)."""
        if self.sasl_users is None:
            return {}
        return {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": SCRAM_MECHANISM,
            "sasl_plain_username": user,
            "sasl_plain_password": self.sasl_users[user],
        }

    def _write_config(self, node: int) -> Path:
        node_dir = self.node_dir(node)
        (node_dir / "data").mkdir(parents=True, exist_ok=True)
        (node_dir / "logs").mkdir(parents=True, exist_ok=True)
        path = node_dir / "server.properties"
        lines = ["# Written by infra/kafka/launcher.py at each start; edits are lost."]
        lines += [f"{key}={value}" for key, value in self.server_properties(node).items()]
        path.write_text("\n".join(lines) + "\n")
        return path

    def _is_formatted(self, node: int) -> bool:
        return (self.node_dir(node) / "data" / "meta.properties").is_file()

    def _java_command(self, node: int, classpath: str, main: str, *args: str) -> list[str]:
        java = _java_executable() or "java"
        level = os.environ.get(LOG_LEVEL_ENV, "WARN")
        return [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-XX:-UsePerfData",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={self.node_dir(node) / 'logs'}",
            f"-Dbarometre.kafka.log.level={level}",
            # Lets a person find (and the launcher's users tell apart) stray JVMs by their command line.
            f"-Dbarometre.kafka.node={self.node_dir(node)}",
            "-cp",
            classpath,
            main,
            *args,
        ]

    def _format(self, nodes: list[int], classpath: str, cluster_id: str) -> None:
        """Format the KRaft storage of the given nodes (in parallel: each is a JVM start)."""
        jobs = []
        for node in nodes:
            cmd = self._java_command(
                node, classpath, "kafka.tools.StorageTool", "format", "--ignore-formatted",
                "-t", cluster_id, "-c", str(self.node_dir(node) / "server.properties"),
            )  # fmt: skip
            for name, password in (self.sasl_users or {}).items():
                cmd += ["--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]"]
            # The storage tool also reads the java heap flags; it needs little, so do not reserve 512m.
            cmd = [a for a in cmd if not a.startswith(("-Xms", "-Xmx"))]
            cmd.insert(1, "-Xmx128m")
            jobs.append(
                (
                    node,
                    subprocess.Popen(
                        cmd,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        cwd=self.node_dir(node),
                    ),
                )
            )
        failures = []
        for node, proc in jobs:
            try:
                out, _ = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            if proc.returncode != 0:
                failures.append(f"node {node}:\n{_tail_text(out.decode('utf-8', 'replace'), 30)}")
        if failures:
            raise KafkaStartError("formatting KRaft storage failed\n" + "\n".join(failures))

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> None:
        """Start every node that is not running, then wait until they all serve metadata.

        Formats a node's storage on its first start only. Raises :class:`KafkaStartError` (and stops
        the nodes this call started) if a node dies or the cluster is not ready within ``timeout``.
        """
        self._start_nodes(list(range(self.nodes)), timeout)

    def start_node(self, node: int, timeout: float = 120) -> None:
        """Start node ``node`` (after :meth:`stop_node`) and wait until the cluster lists it again."""
        self._start_nodes([self._check_node(node)], timeout)

    def _start_nodes(self, wanted: list[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            to_start = [n for n in wanted if not (n in self._procs and self._procs[n].poll() is None)]
            if not to_start:
                return
            classpath = ensure_jars(self.cache_dir)
            check_prerequisites(require_maven=False)
            cluster_id = self._load_or_create_identity()
            busy = [
                p
                for n in to_start
                for p in (self.client_port(n), self.controller_port(n))
                if not _port_free(self.host, p)
            ]
            if busy:
                raise KafkaStartError(
                    f"port(s) {', '.join(map(str, busy))} on {self.host} already in use: another broker "
                    f"(a leftover JVM? look for -Dbarometre.kafka.node in `ps aux`) or another service"
                )
            for node in to_start:
                self._write_config(node)
            unformatted = [n for n in to_start if not self._is_formatted(n)]
            if unformatted:
                self._format(unformatted, classpath, cluster_id)
            _register_live(self)
            for node in to_start:
                self._spawn(node, classpath)
        try:
            self._wait_ready(to_start, deadline, timeout)
        except BaseException:
            # Do not leave half a cluster behind a failed start (KeyboardInterrupt included).
            for node in to_start:
                self._stop_nodes([node], timeout=10, graceful=False)
            raise

    def _spawn(self, node: int, classpath: str) -> None:
        node_dir = self.node_dir(node)
        cmd = self._java_command(node, classpath, "kafka.Kafka", str(node_dir / "server.properties"))
        console = open(node_dir / "console.log", "ab")  # noqa: SIM115 - closed when the node stops
        main_thread = threading.current_thread() is threading.main_thread()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            cwd=node_dir,
            # Own session: a Ctrl-C in the terminal reaches Python alone, which then stops the nodes
            # through stop() (clean shutdown, SIGKILL fallback) rather than racing the JVMs' own handlers.
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGKILL) if main_thread else None,
        )
        self._procs[node] = proc
        self._consoles[node] = console
        self._owner_pid = os.getpid()

    def _wait_ready(self, nodes: list[int], deadline: float, timeout: float) -> None:
        while True:
            for node in nodes:
                proc = self._procs.get(node)
                if proc is None or proc.poll() is not None:
                    code = None if proc is None else proc.returncode
                    raise KafkaStartError(
                        f"Kafka node {node} exited with code {code} while starting\n{self._diagnostics(node)}"
                    )
            if all(_port_open(self.host, self.client_port(n)) for n in nodes) and self._serves(nodes):
                return
            if time.monotonic() >= deadline:
                raise KafkaStartError(
                    f"Kafka ({self.bootstrap_servers}) did not serve metadata for node(s) {nodes} within "
                    f"{timeout:.0f} s\n" + "\n".join(self._diagnostics(n) for n in nodes)
                )
            time.sleep(0.25)

    def _serves(self, nodes: list[int]) -> bool:
        """True when the cluster's metadata lists every one of ``nodes`` as an unfenced broker."""
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError as ClientError

        running = [n for n in range(self.nodes) if n in self._procs and self._procs[n].poll() is None]
        bootstrap = ",".join(f"{self.host}:{self.client_port(n)}" for n in running)
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap,
                client_id="barometre-kafka-launcher",
                bootstrap_timeout_ms=3000,
                request_timeout_ms=5000,
                **self.client_security(),
            )
        except (ClientError, OSError):
            return False
        try:
            brokers = admin.describe_cluster().get("brokers", [])
        except (ClientError, OSError):
            return False
        finally:
            admin.close()
        listed = {b.get("broker_id") for b in brokers if not b.get("is_fenced", False)}
        return set(nodes) <= listed

    def _diagnostics(self, node: int) -> str:
        parts = [f"--- tail of {self.log_file(node)} ---", _tail_file(self.log_file(node)) or "(empty)"]
        console = _tail_file(self.node_dir(node) / "console.log", 20)
        if console:
            parts += [f"--- tail of {self.node_dir(node) / 'console.log'} ---", console]
        return "\n".join(parts)

    def stop(self, timeout: float = 30) -> None:
        """Stop every node: SIGTERM to all at once (a clean shutdown), SIGKILL after ``timeout``.

        All at once because a KRaft node shutting down last, after its peers, waits for a quorum that
        is gone.
        """
        self._stop_nodes(list(range(self.nodes)), timeout, graceful=True)
        _unregister_live(self)

    def stop_node(self, node: int, timeout: float = 30, *, graceful: bool = True) -> None:
        """Stop node ``node``: SIGTERM and wait (SIGKILL after ``timeout``), or SIGKILL at once
        with ``graceful=False`` to simulate a crash."""
        self._stop_nodes([self._check_node(node)], timeout, graceful=graceful)

    def _stop_nodes(self, nodes: list[int], timeout: float, graceful: bool) -> None:
        with self._lock:
            procs = {n: self._procs.pop(n) for n in nodes if n in self._procs}
            consoles = [self._consoles.pop(n) for n in nodes if n in self._consoles]
        for proc in procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
        deadline = time.monotonic() + timeout
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        for console in consoles:
            console.close()

    def __enter__(self) -> KafkaCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"KafkaCluster({str(self.base_dir)!r}, nodes={self.nodes}, bootstrap={self.bootstrap_servers!r})"
        )
