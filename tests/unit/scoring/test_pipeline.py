"""The scoring worker's batch pipeline without Faust, Kafka or ClickHouse: the steps run in their order,
a failing step stops the batch before anything after it (so nothing is acknowledged), and bad records,
accounts the processor fails on and rows ClickHouse rejects become dead letters while the rest goes on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pytest

from services.common.events import AccountSnapshot
from services.common.names import DeadLetterCode
from services.scoring.alerts.noise import Candidate
from services.scoring.dead_letters import Rejection
from services.scoring.pipeline import Batch, Pipeline, Record, snapshot_steps
from services.scoring.processor import BatchOutput
from services.scoring.sink import WriteRejected


@dataclass(frozen=True)
class Msg:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float


def snapshot(account: str, day: int, partition: int, offset: int) -> Msg:
    value = {
        "account_id": account,
        "platform": account.partition(":")[0],
        "entity_id": "COM:38185",
        "observed_at": f"2024-05-{day:02d}T09:00:00Z",
        "followers": 100 + day,
    }
    return Msg("account-snapshots.v1", partition, offset, account.encode(), json.dumps(value).encode(), 1.7e9)


class World:
    """The functions the steps call, recording the order of what reaches Kafka and ClickHouse."""

    def __init__(
        self, fail: frozenset[str] = frozenset(), reject: frozenset[str] = frozenset(), down: str = ""
    ) -> None:
        self.calls: list[str] = []
        self.fail, self.reject, self.down = fail, reject, down
        self.letters: list[tuple[bytes | None, bytes]] = []
        self.written: list[str] = []
        self.candidates: list[Candidate] = []
        self.stored: dict[int, list[tuple[bytes, bytes]]] = {}

    def check(self, what: str) -> None:
        self.calls.append(what)
        if self.down == what:
            raise ConnectionError(f"{what} is down")

    async def score(
        self, good: Sequence[AccountSnapshot], received: Mapping[str, int]
    ) -> tuple[BatchOutput | None, dict[str, Exception]]:
        self.check("score")
        failed: dict[str, Exception] = {
            a: ValueError("boom") for a in self.fail if any(s.account_id == a for s in good)
        }
        kept = [s for s in good if s.account_id not in failed]
        out = BatchOutput(tables={}, after=[], states={s.account_id.encode(): b"state" for s in kept},
                          candidates=[_Candidate(s.account_id) for s in kept])  # type: ignore[misc]  # fmt: skip
        return out, failed

    async def write(
        self, out: BatchOutput, offsets: Mapping[int, tuple[int, int]]
    ) -> dict[str, WriteRejected]:
        self.check("write")
        accounts = {key.decode() for key in out.states}
        self.written = sorted(accounts - self.reject)
        return {a: WriteRejected(f"code 53: {a} refused") for a in accounts & self.reject}

    async def send_letters(self, records: list[tuple[bytes | None, bytes]]) -> None:
        self.check("letters")
        self.letters.extend(records)

    async def send_candidates(self, candidates: Sequence[Candidate]) -> None:
        self.check("candidates")
        self.candidates.extend(candidates)

    async def store(self, changes: dict[int, list[tuple[bytes, bytes]]]) -> None:
        self.check("states")
        self.stored = changes

    def pipeline(self) -> Pipeline:
        return snapshot_steps(
            score=self.score,
            write=self.write,
            send_letters=self.send_letters,
            envelope=envelope,
            send_candidates=self.send_candidates,
            store_states=self.store,
        )


@dataclass(frozen=True)
class _Candidate:
    account_id: str


def envelope(record: Record, rejection: Rejection) -> tuple[bytes | None, bytes]:
    return record.key, f"{rejection.code.value}@{record.partition}:{record.offset}".encode()


RECORDS = [
    snapshot("x:a", 1, 0, 10),
    snapshot("x:b", 1, 1, 20),
    Msg("account-snapshots.v1", 1, 21, b"x:bad", b"{not json", 1.7e9),
    snapshot("x:a", 2, 0, 11),
    snapshot("x:c", 1, 2, 30),
]


def run(world: World) -> Batch:
    return asyncio.run(world.pipeline().run(RECORDS))


def test_the_steps_run_in_the_commit_order() -> None:
    assert repr(World().pipeline()) == (
        "Classify → Tap → Process → Tap → SendDeadLetters → Write → SendDeadLetters → PublishCandidates → "
        "StoreStates"
    )
    world = World()
    batch = run(world)
    assert world.calls == ["score", "letters", "write", "candidates", "states"]
    assert batch.offsets == {0: (10, 11), 1: (20, 21), 2: (30, 30)}
    assert [key for key, _ in world.letters] == [b"x:bad"]
    assert world.written == ["x:a", "x:b", "x:c"]
    assert world.stored == {0: [(b"x:a", b"state")], 1: [(b"x:b", b"state")], 2: [(b"x:c", b"state")]}
    assert (batch.processed, batch.dead_lettered) == (4, 1)


@pytest.mark.parametrize("down", ["score", "letters", "write", "candidates", "states"])
def test_a_failing_step_stops_the_batch_before_anything_after_it(down: str) -> None:
    world = World(down=down)
    with pytest.raises(ConnectionError):
        run(world)
    order = ["score", "letters", "write", "candidates", "states"]
    assert world.calls == order[: order.index(down) + 1]


def test_an_account_the_processor_fails_on_is_dead_lettered_and_the_rest_goes_on() -> None:
    world = World(fail=frozenset({"x:a"}))
    batch = run(world)
    letters = sorted(value.decode() for _, value in world.letters)
    assert [letter for letter in letters if letter.startswith("processing_error")] == [
        "processing_error@0:10",
        "processing_error@0:11",
    ]
    assert len(letters) == 3  # and the bad record's
    assert world.written == ["x:b", "x:c"]
    assert (batch.processed, batch.dead_lettered) == (2, 3)


def test_rows_clickhouse_rejects_are_dead_lettered_before_candidates_and_states_without_them() -> None:
    world = World(reject=frozenset({"x:b"}))
    batch = run(world)
    assert world.calls == ["score", "letters", "write", "letters", "candidates", "states"]
    assert any(value.decode() == f"{DeadLetterCode.WRITE_REJECTED.value}@1:20" for _, value in world.letters)
    assert sorted({c.account_id for c in world.candidates}) == ["x:a", "x:c"]
    assert sorted(k for changes in world.stored.values() for k, _ in changes) == [b"x:a", b"x:c"]
    assert "x:b" in batch.failed and batch.processed == 3
