"""What `import --wait` still waits for, given the consumer group's committed offsets."""

from services.ingest.wait import behind


def test_partitions_short_of_the_wanted_offsets() -> None:
    assert behind({0: 10, 1: 4}, {0: 10, 1: 7, 2: 3}) == {1: 3, 2: 3}
    assert behind({0: 12}, {0: 10}) == {}
    assert behind({}, {}) == {}
