"""``barometre import snapshots FILE``: validate a file line by line and publish every good line.

Streams in constant memory: lines are validated and published in chunks, each chunk acknowledged by
Kafka before the next is read, and each bad line is reported as soon as it is met (line number and
reason). The report counts what was published; the command exits non-zero when any line was bad.

What a file may unfold into is bounded: a compressed file stops the import (:class:`FileTooLarge`) past
``import_max_decompressed_bytes`` decompressed bytes, and no line may be longer than
:data:`MAX_LINE_BYTES`, so that a small hostile file (a gzip bomb, a line without end) cannot take the
memory of the machine. What was published before stays published (events are idempotent downstream).
"""

from __future__ import annotations

import gc
import io
import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import IO, TypeVar

from services.common.names import SourceKind
from services.common.settings import Settings
from services.ingest import validation
from services.ingest.publisher import Publisher
from services.ingest.sources.files import detect_format, open_binary, read_snapshots

T = TypeVar("T")
CHUNK = 5_000
# The longest line a snapshot file may have; a snapshot is a few hundred bytes.
MAX_LINE_BYTES = 1024 * 1024


class FileTooLarge(ValueError):
    """The file unfolds into more than an import accepts (decompressed size, or one line's length)."""


class _Bounded(io.RawIOBase):
    """A file's (decompressed) bytes, counted as they are read: FileTooLarge past ``limit`` bytes in all
    (0: no limit) or past ``max_line`` bytes without a line feed."""

    def __init__(self, inner: IO[bytes], name: str, limit: int, max_line: int = MAX_LINE_BYTES) -> None:
        super().__init__()
        self._inner = inner
        self._name = name
        self._limit = limit
        self._max_line = max_line
        self.total = 0
        self._since_newline = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.total += n
        if self._limit and self.total > self._limit:
            raise FileTooLarge(
                f"{self._name} decompresses to more than {self._limit:,} bytes "
                "(BAROMETRE_IMPORT_MAX_DECOMPRESSED_BYTES); split it, or raise the limit"
            )
        last = data.rfind(b"\n")
        self._since_newline = self._since_newline + n if last < 0 else n - last - 1
        if self._since_newline > self._max_line:
            raise FileTooLarge(f"{self._name} has a line longer than {self._max_line:,} bytes")
        return n


@dataclass
class ImportReport:
    """What an import did."""

    lines: int = 0
    published: int = 0
    rejected: int = 0
    seconds: float = 0.0
    # partition → offset after the last record published there (for --wait)
    end_offsets: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


class _Progress:
    """Bytes read of the file on disk (compressed size for .gz), for the progress bar."""

    def __init__(self, raw: IO[bytes], total: int, enabled: bool) -> None:
        self.raw = raw
        self.bar = None
        self.last = 0
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc="import",
                dynamic_ncols=True,
                smoothing=0.1,
            )

    def update(self, lines: int, published: int, rejected: int, seconds: float) -> None:
        if self.bar is None:
            return
        pos = self.raw.tell()
        self.bar.update(pos - self.last)
        self.last = pos
        rate = lines / seconds if seconds else 0.0
        self.bar.set_postfix_str(
            f"{lines:,} lines, {rate:,.0f}/s, {published:,} ok, {rejected:,} bad", refresh=False
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# State of an import worker process: its own producer and its copy of the registry.
_worker: tuple[Publisher, validation.Registry] | None = None


def _init_worker(settings: Settings, registry: validation.Registry) -> None:
    global _worker
    # Each chunk is flushed and acknowledged before its result returns, so nothing is pending when the
    # pool ends the process; there is nothing to close on the way out.
    publisher = Publisher(settings, client_id="barometre-import")
    publisher.warm_up()  # while the first chunks are read
    _worker = (publisher, registry)


# (line number, what the file reader made of the line); (lines, published, rejections, end offsets)
Chunk = list[tuple[int, bytes | dict[str, object] | validation.Rejection]]
ChunkResult = tuple[int, int, list[tuple[int, str]], dict[int, int]]


def _process_chunk(
    chunk: Chunk,
    now: datetime,
    publisher: Publisher,
    registry: validation.Registry,
) -> ChunkResult:
    accepted, rejected = validation.check(chunk, now, registry, SourceKind.IMPORT.value)
    ends = publisher.publish(accepted)
    return len(chunk), len(accepted), [(r.index, r.error) for r in rejected], ends


def _process_in_worker(chunk: Chunk, now: datetime) -> ChunkResult:
    assert _worker is not None, "worker not initialised"
    return _process_chunk(chunk, now, *_worker)


def _in_workers(
    chunks: Iterable[Chunk],
    now: Callable[[], datetime],
    workers: int,
    settings: Settings,
    registry: validation.Registry,
) -> Iterator[ChunkResult]:
    """The results of ``chunks`` processed by a pool of ``workers`` processes, in order."""
    ctx = multiprocessing.get_context("fork")
    # Python's advice for forked workers: the objects inherited from this process (modules, the
    # registry) go to a permanent generation, so the workers' collections neither scan them nor touch
    # (and so copy) their pages: about a tenth of the workers' CPU.
    gc.freeze()
    try:
        with ctx.Pool(workers, initializer=_init_worker, initargs=(settings, registry)) as pool:
            pending: deque[AsyncResult[ChunkResult]] = deque()
            for chunk in chunks:
                pending.append(pool.apply_async(_process_in_worker, (chunk, now())))
                # Bounded: a multi-GB file never has more than 2 chunks per worker in memory.
                while len(pending) >= 2 * workers:
                    yield pending.popleft().get()
            while pending:
                yield pending.popleft().get()
            pool.close()
            pool.join()
    finally:
        gc.unfreeze()


def import_snapshots(
    path: Path,
    publisher: Publisher,
    registry: validation.Registry,
    on_reject: Callable[[int, str], None],
    *,
    progress: bool = False,
    workers: int = 1,
    settings: Settings | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ImportReport:
    """Validate and publish every line of ``path``; bad lines go to ``on_reject(line, reason)``.

    With ``workers > 1`` (and ``settings`` to build their producers), chunks are validated and published
    by that many processes, a bounded number of chunks in flight; reports still come in file order.
    """
    fmt = detect_format(path)
    report = ImportReport()
    limit = settings.import_max_decompressed_bytes if settings is not None else 0
    start = time.perf_counter()

    def account(result: ChunkResult) -> None:
        lines, published, rejected, ends = result
        for line, reason in rejected:
            on_reject(line, reason)
        for partition, offset in ends.items():
            report.end_offsets[partition] = max(report.end_offsets.get(partition, 0), offset)
        report.lines += lines
        report.published += published
        report.rejected += len(rejected)

    with path.open("rb") as raw:
        bar = _Progress(raw, path.stat().st_size, progress)
        source = open_binary(path) if path.suffix == ".gz" else raw
        stream = io.BufferedReader(
            _Bounded(source, path.name, limit if source is not raw else 0), buffer_size=1 << 16
        )
        chunks = _chunks(read_snapshots(stream, fmt), CHUNK)
        try:
            if workers <= 1 or settings is None:
                results: Iterable[ChunkResult] = (
                    _process_chunk(chunk, now(), publisher, registry) for chunk in chunks
                )
            else:
                results = _in_workers(chunks, now, workers, settings, registry)
            for result in results:
                account(result)
                bar.update(report.lines, report.published, report.rejected, time.perf_counter() - start)
        finally:
            bar.close()
            if source is not raw:
                source.close()
    report.seconds = time.perf_counter() - start
    return report
