"""Local Apache Kafka (KRaft) for barometre without containers: jars from Maven Central, JVMs we supervise.

See :mod:`infra.kafka.launcher` for the details and ``python -m infra.kafka --help`` for the command line.
"""

from infra.kafka.launcher import (
    CONTROLLER_PORT_OFFSET,
    KafkaCluster,
    KafkaError,
    KafkaStartError,
    PrerequisiteError,
    check_prerequisites,
    default_cache_dir,
    ensure_jars,
    jars_dir,
    kafka_version,
)

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
