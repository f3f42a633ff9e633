"""Alerts by audience size: the harness's spike and drop cells and clean series, generated within
each audience bucket, scored per bucket (docs/ALERTS.md, "The reporting floor").

The reporting floor scales with the audience (:func:`~services.scoring.alerts.detection.reporting_floor`);
this tells whether it stays precise on small accounts, whose counts are a few followers a day, and how
much of what happens to them it reports. Everything else is ``bench/_alerts_evaluation.py``'s: the
same account model (only the audience range changes), the same pure path, the same matching.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from bench._alerts_evaluation import SIZES, CellResult, Kind, generate, score_cell
from services.scoring.alerts.detection import DEFAULT_PARAMS, DetectorParams

# (label, lowest, highest followers at the start of the series; log-uniform between).
BUCKETS: Final = (
    ("<100", 10.0, 100.0),
    ("100-1k", 100.0, 1_000.0),
    ("1k-10k", 1_000.0, 10_000.0),
    ("10k-100k", 10_000.0, 100_000.0),
    (">=100k", 100_000.0, 1_000_000.0),
)
# The detectors before the floor scaled with the audience: 50 followers, 0.5 % of the audience above.
FORMER_FLOOR: Final = DetectorParams(small_change_share=0.0, small_change_min=DEFAULT_PARAMS.min_change)


@dataclass(slots=True)
class BucketResult:
    """The figures of one audience bucket: its spike and drop cells, and its clean series."""

    name: str
    cells: list[CellResult] = field(default_factory=list)
    clean: CellResult | None = None

    def _sum(self, attribute: str, least_k: float = 0.0) -> int:
        return sum(getattr(c, attribute) for c in self.cells if (c.k or 0.0) >= least_k)

    @property
    def precision(self) -> float | None:
        """TP / (TP + FP) over every published alert of the bucket's spike and drop series."""
        tp, fp = self._sum("tp"), self._sum("fp")
        return tp / (tp + fp) if tp + fp else None

    def reportable(self, least_k: float = 0.0, most_k: float = float("inf")) -> int:
        return sum(c.reportable for c in self.cells if least_k <= (c.k or 0.0) <= most_k)

    def recall(self, least_k: float = 0.0, most_k: float = float("inf")) -> float | None:
        """Reportable events found / reportable events, sizes in [least_k, most_k]."""
        chosen = [c for c in self.cells if least_k <= (c.k or 0.0) <= most_k]
        reportable = sum(c.reportable for c in chosen)
        return sum(c.found for c in chosen) / reportable if reportable else None

    def recall_all(self) -> float | None:
        """Every injected event found / every injected event (the floor counts as a miss)."""
        truths = self._sum("truths")
        return self._sum("found_all") / truths if truths else None

    @property
    def false_per_1000(self) -> float:
        """False alerts per 1,000 account-days on the bucket's clean series."""
        return self.clean.false_per_1000 if self.clean else 0.0


def evaluate_buckets(
    seed: int = 0,
    n: int = 200,
    clean: int = 300,
    *,
    params: DetectorParams = DEFAULT_PARAMS,
    buckets: Sequence[tuple[str, float, float]] = BUCKETS,
    sizes: Iterable[float] = SIZES,
    progress: Callable[[str], None] | None = None,
) -> list[BucketResult]:
    """``n`` series per (bucket, kind, size) cell and ``clean`` clean series per bucket, through the
    pure path with ``params``. The same seed gives the same series whatever ``params``."""
    say = progress or (lambda _: None)
    sizes = tuple(sizes)
    out = []
    for b, (name, low, high) in enumerate(buckets):
        result = BucketResult(name)
        cell = 200 + 20 * b  # cells of their own: no series shared with evaluate()'s
        for kind in (Kind.SPIKE, Kind.DROP):
            for k in sizes:
                cell += 1
                population = generate(seed, cell, n, kind, k, params=params, followers=(low, high))
                result.cells.append(score_cell(f"{name} {kind.value} {k:g}x", kind, k, population, params))
        population = generate(seed, 200 + 20 * b + 19, clean, None, params=params, followers=(low, high))
        result.clean = score_cell(f"{name} clean", None, None, population, params)
        say(name)
        out.append(result)
    return out


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_buckets(results: Sequence[BucketResult], former: Sequence[BucketResult] | None = None) -> bool:
    """The table per audience bucket; whether precision >= 0.95 in every bucket."""
    header = (
        f"{'bucket':<10}{'events':>7}{'report.':>8}{'TP':>6}{'FP':>5}{'prec.':>7}{'rec.2x':>7}"
        f"{'rec.>=5x':>9}{'rec.all':>8}{'FP/1000d':>9}"
    )
    if former is not None:
        header += f"{'former report.':>15}{'former rec.all':>15}"
    print(header)
    print("-" * len(header))
    ok = True
    for i, r in enumerate(results):
        precision = r.precision
        ok &= precision is None or precision >= 0.95
        line = (
            f"{r.name:<10}{r._sum('truths'):>7}{r.reportable():>8}{r._sum('tp'):>6}{r._sum('fp'):>5}"
            f"{_fmt(precision):>7}{_fmt(r.recall(2.0, 2.0)):>7}{_fmt(r.recall(5.0)):>9}"
            f"{_fmt(r.recall_all()):>8}{r.false_per_1000:>9.3f}"
        )
        if former is not None:
            line += f"{former[i].reportable():>15}{_fmt(former[i].recall_all()):>15}"
        print(line)
    print()
    print(f"{'met   ' if ok else 'MISSED'}  precision >= 0.95 in every audience bucket")
    return ok
