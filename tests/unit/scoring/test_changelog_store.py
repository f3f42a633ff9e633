"""``changelog.put_local``: a batch's states land in the store of their own partition.

Faust's RocksDB store keeps one database a partition and, for ``store[key] = value``, takes the partition
of the event being processed: a batch holds many partitions, so the worker writes each state into the
database of its own partition instead. Checked with real RocksDB databases (rocksdict, the driver Faust
uses) behind the one method of Faust's store the worker calls."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rocksdict import Options, Rdict

from services.scoring.changelog import ROCKSDB_OPTIONS, put_local


class PartitionedStore:
    """Faust's RocksDB store as ``put_local`` sees it: a database a partition."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dbs: dict[int, Rdict] = {}

    def _db_for_partition(self, partition: int) -> Rdict:
        if partition not in self.dbs:
            self.dbs[partition] = Rdict(str(self.root / str(partition)), Options(raw_mode=True))
        return self.dbs[partition]


def test_each_state_goes_to_the_database_of_its_partition(tmp_path: Path) -> None:
    store = PartitionedStore(tmp_path)
    put_local(store, {0: [(b"a", b"1"), (b"b", b"2")], 3: [(b"c", b"3")], 5: []})
    put_local(store, {0: [(b"a", b"4")]})  # last write wins
    assert sorted(store.dbs) == [0, 3]
    assert store.dbs[0][b"a"] == b"4" and store.dbs[0][b"b"] == b"2"
    assert store.dbs[0].get(b"c") is None
    assert store.dbs[3][b"c"] == b"3"
    for db in store.dbs.values():
        db.close()


def test_a_mapping_store_gets_every_state() -> None:
    store: dict[bytes, bytes] = {}
    put_local(store, {0: [(b"a", b"1")], 7: [(b"b", b"2"), (b"a", b"3")]})
    assert store == {b"a": b"3", b"b": b"2"}


def test_rocksdb_options_bound_the_memory_of_a_partition() -> None:
    # Faust's defaults: a 2 GiB block cache and three 64 MiB write buffers, for every partition.
    per_partition = (
        ROCKSDB_OPTIONS["write_buffer_size"] * ROCKSDB_OPTIONS["max_write_buffer_number"]
        + ROCKSDB_OPTIONS["block_cache_size"]
    )
    assert per_partition <= 16 * 2**20


def test_without_pandas_keeps_clickhouse_connect_from_importing_it() -> None:
    # In a process of its own: in this one, another test may have imported pandas already.
    code = (
        "import sys\n"
        "from services.scoring.sink import without_pandas\n"
        "without_pandas()\n"
        "from clickhouse_connect.driver import options\n"
        "assert options.pd is None, options.pd\n"
        "assert 'pandas' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[3])
