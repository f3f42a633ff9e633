"""``barometre import snapshots FILE``: validate a file line by line and publish every good line.

Streams in constant memory: lines are validated and published in chunks, each chunk acknowledged by
Kafka before the next is read, and each bad line is reported as soon as it is met (line number and
reason). The report counts what was published; the command exits non-zero when any line was bad.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import IO, TypeVar

from services.common.names import SourceKind
from services.ingest import validation
from services.ingest.publisher import Publisher
from services.ingest.sources.files import detect_format, open_binary, read_snapshots

T = TypeVar("T")
CHUNK = 5_000


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


def import_snapshots(
    path: Path,
    publisher: Publisher,
    registry: validation.Registry,
    on_reject: Callable[[int, str], None],
    *,
    progress: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ImportReport:
    """Validate and publish every line of ``path``; bad lines go to ``on_reject(line, reason)``."""
    fmt = detect_format(path)
    report = ImportReport()
    start = time.perf_counter()
    with path.open("rb") as raw:
        bar = _Progress(raw, path.stat().st_size, progress)
        stream = open_binary(path) if path.suffix == ".gz" else raw
        try:
            for chunk in _chunks(read_snapshots(stream, fmt), CHUNK):
                accepted, rejected = validation.check(chunk, now(), registry, SourceKind.IMPORT.value)
                for r in rejected:
                    on_reject(r.index, r.error)
                ends = publisher.publish([(s.account_id.encode(), s.to_event_bytes()) for s in accepted])
                for partition, offset in ends.items():
                    report.end_offsets[partition] = max(report.end_offsets.get(partition, 0), offset)
                report.lines += len(chunk)
                report.published += len(accepted)
                report.rejected += len(rejected)
                bar.update(report.lines, report.published, report.rejected, time.perf_counter() - start)
        finally:
            bar.close()
            if stream is not raw:
                stream.close()
    report.seconds = time.perf_counter() - start
    return report
