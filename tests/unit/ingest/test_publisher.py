"""The publisher places each key on the partition Kafka's default partitioner would choose."""

from __future__ import annotations

import random

from kafka.partitioner.default import murmur2

from services.ingest.publisher import partition_of


def test_partition_of_is_kafkas_murmur2() -> None:
    rng = random.Random(3)
    keys = [b"", b"x:villedegrenoble", "facebook:é😀".encode()]
    keys += [rng.randbytes(rng.randrange(0, 64)) for _ in range(5000)]
    for count in (1, 3, 6, 12):
        for key in keys:
            assert partition_of(key, count) == (murmur2(key) & 0x7FFFFFFF) % count, (key, count)
