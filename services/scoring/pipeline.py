"""A batch of snapshot records through the scoring worker: named steps, run in order, each once.

The worker's one promise about a batch is its commit order: nothing of a batch is committed (its
offsets acknowledged to Faust) before everything it must leave behind is safe. The steps, in the order
:func:`snapshot_steps` gives them:

1. :class:`Classify` decodes each record; what is not a valid snapshot becomes a dead letter;
2. :class:`Process` scores the valid ones (the pure processor, in a thread); the accounts it fails on
   become dead letters, the others give rows, states and alert candidates (:class:`BatchOutput`);
3. :class:`SendDeadLetters` sends the dead letters, acknowledged by Kafka;
4. :class:`Write` writes the rows to ClickHouse; the accounts whose rows ClickHouse rejects become dead
   letters (their states and candidates are dropped), sent at once by a second :class:`SendDeadLetters`;
5. :class:`PublishCandidates` sends the alert candidates, acknowledged (before the states: once a state
   holds a point, that point raises nothing again);
6. :class:`StoreStates` stores the new states (local store and changelog, acknowledged).

:meth:`Pipeline.run` returns only when every step returned: the caller (the Faust agent) acknowledges the
batch's records then, and Faust commits acknowledged offsets. A step that raises stops the batch there:
nothing after it runs, nothing is acknowledged, and the batch is run again from the start (every step is
idempotent: rows carry deduplication tokens, records sent twice are read twice with the same ids, states
are last-write-wins). :class:`Tap` steps let the caller watch the batch between steps (the worker's clock,
the accounts fed) without taking part in the order.

Each step is a small class holding the functions it calls (send, write, store), so that the steps and
their order are tested without Faust, Kafka or ClickHouse (``tests/unit/scoring/test_pipeline.py``);
``services.scoring.runtime`` gives them the real ones.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from services.common.events import AccountSnapshot
from services.common.names import DeadLetterCode
from services.scoring.alerts.noise import Candidate
from services.scoring.dead_letters import (
    Rejection,
    classify,
    describe_processing_error,
    describe_rejection,
)
from services.scoring.processor import BatchOutput
from services.scoring.sink import WriteRejected

log = logging.getLogger(__name__)


class Record(Protocol):
    """What the pipeline reads of a Kafka record (a Faust message has these attributes)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> float: ...  # seconds


@dataclass
class Batch:
    """A batch on its way through the steps: what each step found, for the steps after it."""

    records: Sequence[Record]
    # partition -> (first, last) offset of the batch's records on it (the sink's deduplication tokens)
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)
    good: list[AccountSnapshot] = field(default_factory=list)
    records_of: dict[str, list[Record]] = field(default_factory=dict)  # account_id -> its records
    received: dict[str, int] = field(default_factory=dict)  # event_id -> receipt time (ms)
    letters: list[tuple[Record, Rejection]] = field(default_factory=list)  # not sent yet
    out: BatchOutput | None = None
    failed: dict[str, Exception] = field(default_factory=dict)  # accounts dead-lettered, and why
    dead_lettered: int = 0  # records sent to the dead-letter topic

    def reject(self, account_id: str, rejection: Rejection) -> None:
        """Dead-letter every record of ``account_id`` with ``rejection``."""
        self.letters.extend((record, rejection) for record in self.records_of[account_id])

    @property
    def processed(self) -> int:
        """Valid records whose account was scored and written."""
        return len(self.good) - sum(len(self.records_of[a]) for a in self.failed)

    def partition_of(self, key: bytes) -> int:
        """The partition of the records of the account whose key (its id's bytes) is ``key``: its state
        goes to the same partition of the changelog."""
        return self.records_of[key.decode()][0].partition


class Step(Protocol):
    async def __call__(self, batch: Batch) -> None: ...


class Pipeline:
    """The steps a batch goes through, in order (module docstring)."""

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = tuple(steps)

    async def run(self, records: Sequence[Record]) -> Batch:
        """Run ``records`` through every step; return once the last one returned (then, and only then,
        may the caller acknowledge them). An exception of a step stops the batch there."""
        batch = Batch(records)
        for step in self.steps:
            await step(batch)
        return batch

    def __repr__(self) -> str:
        return " → ".join(type(step).__name__ for step in self.steps)


class Classify:
    """Decode each record; a record that is not a valid snapshot becomes a dead letter."""

    async def __call__(self, batch: Batch) -> None:
        offsets = batch.offsets
        for record in batch.records:
            first, last = offsets.get(record.partition, (record.offset, record.offset))
            offsets[record.partition] = (min(first, record.offset), max(last, record.offset))
            try:
                verdict = classify(record.key, record.value)
            except Exception as exc:  # classify expects bad input, not to fail: our fault, not the record's
                verdict = Rejection(DeadLetterCode.PROCESSING_ERROR, describe_processing_error(None, exc))
            if isinstance(verdict, Rejection):
                batch.letters.append((record, verdict))
                continue
            batch.good.append(verdict)
            batch.records_of.setdefault(verdict.account_id, []).append(record)
            batch.received[verdict.event_id] = int(record.timestamp * 1000)


def event_ids(account_id: str, batch: Batch) -> dict[str, object]:
    """The fields a log line about ``account_id``'s events carries (``extra=``; JSON logs show them):
    the account (also the records' key) and where its records are, ``"topic/partition:offset"``."""
    records = batch.records_of.get(account_id, [])
    return {
        "account_id": account_id,
        "event_key": account_id,
        "records": [f"{r.topic}/{r.partition}:{r.offset}" for r in records],
        "partition": records[0].partition if records else None,
        "offset": records[0].offset if records else None,
    }


Score = Callable[
    [Sequence[AccountSnapshot], Mapping[str, int]], Awaitable[tuple[BatchOutput | None, dict[str, Exception]]]
]


class Process:
    """Score the valid snapshots with ``score`` (which isolates the accounts the processor fails on and
    waits out a failing dependency); the accounts it failed on become dead letters."""

    def __init__(self, score: Score) -> None:
        self.score = score

    async def __call__(self, batch: Batch) -> None:
        if not batch.good:
            return
        batch.out, failed = await self.score(batch.good, batch.received)
        for account_id, error in failed.items():
            log.error("Scoring account %s failed; its events go to the dead-letter topic", account_id,
                      exc_info=error, extra=event_ids(account_id, batch))  # fmt: skip
            rejection = Rejection(
                DeadLetterCode.PROCESSING_ERROR, describe_processing_error(account_id, error)
            )
            batch.reject(account_id, rejection)
        batch.failed.update(failed)


class SendDeadLetters:
    """Send the batch's pending dead letters with ``send`` (which returns once Kafka acknowledged every
    one); ``envelope`` makes a record and its rejection into the dead letter's key and value."""

    def __init__(
        self,
        send: Callable[[list[tuple[bytes | None, bytes]]], Awaitable[None]],
        envelope: Callable[[Record, Rejection], tuple[bytes | None, bytes]],
    ) -> None:
        self.send, self.envelope = send, envelope

    async def __call__(self, batch: Batch) -> None:
        if not batch.letters:
            return
        await self.send([self.envelope(record, rejection) for record, rejection in batch.letters])
        batch.dead_lettered += len(batch.letters)
        batch.letters = []


Writer = Callable[[BatchOutput, Mapping[int, tuple[int, int]]], Awaitable[dict[str, WriteRejected]]]


class Write:
    """Write the batch's rows with ``write`` (retried until ClickHouse takes them; it returns the
    accounts whose rows ClickHouse rejects, having written the others). A rejected account's events
    become dead letters; its states and candidates are dropped."""

    def __init__(self, write: Writer) -> None:
        self.write = write

    async def __call__(self, batch: Batch) -> None:
        out = batch.out
        if out is None:
            return
        rejected = await self.write(out, batch.offsets)
        if not rejected:
            return
        for account_id, error in rejected.items():
            log.error("ClickHouse rejects the rows of account %s; its events go to the dead-letter topic: %s",
                      account_id, error, extra=event_ids(account_id, batch))  # fmt: skip
            batch.reject(
                account_id, Rejection(DeadLetterCode.WRITE_REJECTED, describe_rejection(account_id, error))
            )
        keys = {account_id.encode() for account_id in rejected}
        out.states = {key: value for key, value in out.states.items() if key not in keys}
        out.candidates = [c for c in out.candidates if c.account_id not in rejected]
        batch.failed.update(rejected)


class PublishCandidates:
    """Send the batch's alert candidates with ``send`` (acknowledged by Kafka when it returns)."""

    def __init__(self, send: Callable[[Sequence[Candidate]], Awaitable[None]]) -> None:
        self.send = send

    async def __call__(self, batch: Batch) -> None:
        if batch.out is not None and batch.out.candidates:
            await self.send(batch.out.candidates)


class StoreStates:
    """Store the batch's new states with ``store``: partition -> its (key, state) pairs, each state on
    the partition of its account's records (returns once the changelog acknowledged them)."""

    def __init__(self, store: Callable[[dict[int, list[tuple[bytes, bytes]]]], Awaitable[None]]) -> None:
        self.store = store

    async def __call__(self, batch: Batch) -> None:
        if batch.out is None or not batch.out.states:
            return
        changes: dict[int, list[tuple[bytes, bytes]]] = {}
        for key, value in batch.out.states.items():
            changes.setdefault(batch.partition_of(key), []).append((key, value))
        await self.store(changes)


class Tap:
    """Call ``watch(batch)`` between two steps (it must not fail, nor change the batch)."""

    def __init__(self, watch: Callable[[Batch], None]) -> None:
        self.watch = watch

    async def __call__(self, batch: Batch) -> None:
        self.watch(batch)


def snapshot_steps(
    *,
    score: Score,
    write: Writer,
    send_letters: Callable[[list[tuple[bytes | None, bytes]]], Awaitable[None]],
    envelope: Callable[[Record, Rejection], tuple[bytes | None, bytes]],
    send_candidates: Callable[[Sequence[Candidate]], Awaitable[None]],
    store_states: Callable[[dict[int, list[tuple[bytes, bytes]]]], Awaitable[None]],
    classified: Callable[[Batch], None] = lambda batch: None,
    processed: Callable[[Batch], None] = lambda batch: None,
) -> Pipeline:
    """The scoring worker's pipeline for a batch of snapshot records (module docstring), with the
    functions that reach Kafka and ClickHouse, and two taps: after classification, after processing."""
    letters = SendDeadLetters(send_letters, envelope)
    return Pipeline(
        [
            Classify(),
            Tap(classified),
            Process(score),
            Tap(processed),
            letters,
            Write(write),
            letters,  # the rows ClickHouse rejected, before anything else of the batch is published
            PublishCandidates(send_candidates),
            StoreStates(store_states),
        ]
    )
