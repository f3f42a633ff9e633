"""The scoring worker's lag gauge forgets the partitions a rebalance took away."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from services.scoring.runtime import forget_lost_partitions


def _series(gauge: Gauge) -> dict[tuple[str, str], float]:
    return {(s.labels["topic"], s.labels["partition"]): s.value for m in gauge.collect() for s in m.samples}


def test_revoked_partitions_lose_their_series() -> None:
    gauge = Gauge("lag", "lag", ["topic", "partition"], registry=CollectorRegistry())
    for partition, lag in (("0", 5), ("1", 7), ("2", 0)):
        gauge.labels("snapshots", partition).set(lag)
    gauge.labels("other", "0").set(3)

    forget_lost_partitions(gauge, {("snapshots", "0"), ("snapshots", "2")})

    assert _series(gauge) == {("snapshots", "0"): 5, ("snapshots", "2"): 0}


def test_nothing_assigned_forgets_everything() -> None:
    gauge = Gauge("lag", "lag", ["topic", "partition"], registry=CollectorRegistry())
    gauge.labels("snapshots", "3").set(1)
    forget_lost_partitions(gauge, set())
    assert _series(gauge) == {}
    forget_lost_partitions(gauge, set())  # idempotent
