"""``barometre rebuild``'s refusals that need no broker (the rebuild itself: tests/integration/scoring)."""

from __future__ import annotations

import pytest

from services.common.settings import Settings
from services.scoring.rebuild import RebuildError, run_rebuild


def test_rebuild_refuses_a_clickhouse_cluster() -> None:
    """On a cluster its fresh tables would copy the Distributed tables on one node: it refuses, before
    touching Kafka or ClickHouse (nothing listens at these addresses)."""
    settings = Settings(
        clickhouse_cluster="barometre", kafka_bootstrap="127.0.0.1:9", clickhouse_url="http://127.0.0.1:9"
    )
    with pytest.raises(RebuildError, match="not on a ClickHouse cluster"):
        run_rebuild(settings)
