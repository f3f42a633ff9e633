"""The end-of-run report of ``barometre discover`` and its review CSV.

The report counts accounts new, changed, unchanged, kept (registered otherwise), conflicting,
unverifiable and rejected by the platform, per platform and per category, then lists the conflicts,
the unverifiable accounts and the unusable source rows. The CSV is the accounts import format
(``entity_id,platform,handle,account_id,url``) plus ``state`` and ``sources``, one row per account and
entity, so that a reviewer can delete the wrong rows and import the rest with
``barometre import accounts``.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from services.common.names import AccountState, Category, Platform
from services.ingest.discovery.merge import Outcome, Plan, Status
from services.ingest.discovery.model import Harvest

CSV_COLUMNS = ("entity_id", "platform", "handle", "account_id", "url", "state", "sources")

# Report columns, in order: the statuses, then the two cross-cutting counts.
COLUMNS = ("new", "changed", "unchanged", "kept", "conflict", "unverifiable", "rejected")
_LISTED = 50  # conflicts and problems listed in full up to this many; the CSV has everything


@dataclass
class Report:
    """Counts by platform or category, then column, and the lines to list."""

    by_platform: dict[str, Counter[str]]
    by_category: dict[str, Counter[str]]
    lines: list[str]

    def total(self, column: str) -> int:
        return sum(c[column] for c in self.by_platform.values())


def _columns(outcome: Outcome) -> list[str]:
    columns = [outcome.status.value]
    if outcome.unverifiable:
        columns.append("unverifiable")
    if outcome.status in (Status.NEW, Status.CHANGED) and outcome.state == AccountState.REJECTED.value:
        columns.append("rejected")
    return columns


def build(plan: Plan, harvests: Sequence[Harvest], *, dry_run: bool) -> Report:
    """The report of one run."""
    by_platform: dict[str, Counter[str]] = {p.value: Counter() for p in Platform}
    by_category: dict[str, Counter[str]] = {c.value: Counter() for c in Category}
    for outcome in plan.outcomes:
        for column in _columns(outcome):
            by_platform[outcome.platform][column] += 1
            by_category[outcome.category.value][column] += 1
    lines: list[str] = []
    for harvest in harvests:
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(harvest.skipped.items()))
        lines.append(
            f"{harvest.source.value}: {len(harvest.candidates)} links in {harvest.requests} requests, "
            f"{len(harvest.issues)} unusable rows" + (f"; left out: {skipped}" if skipped else "")
        )
        if harvest.failed:
            lines.append(f"  incomplete: {harvest.failed}")
        for issue in harvest.issues[:_LISTED]:
            lines.append(f"  unusable: {issue.reference}: {issue.reason}")
        if len(harvest.issues) > _LISTED:
            lines.append(f"  … and {len(harvest.issues) - _LISTED} more")
    for conflict in plan.conflicts[:_LISTED]:
        lines.append(f"conflict ({conflict.kind.value}, {conflict.platform}): {conflict.detail}")
    if len(plan.conflicts) > _LISTED:
        lines.append(f"… and {len(plan.conflicts) - _LISTED} more conflicts")
    unverifiable = [o for o in plan.outcomes if o.unverifiable]
    for outcome in unverifiable[:_LISTED]:
        lines.append(f"unverifiable: {outcome.account_id}: {outcome.unverifiable}")
    rejected = [o for o in plan.outcomes if "rejected" in _columns(o)]
    for outcome in rejected[:_LISTED]:
        lines.append(f"rejected: {outcome.account_id}: {outcome.detail}")
    lines.append("dry run: nothing written" if dry_run else f"{len(plan.accounts)} account rows written")
    return Report(by_platform, by_category, lines)


def render(report: Report) -> str:
    """The report as text: two tables (per platform, per category), then the listed lines."""
    out: list[str] = []
    for title, table in (("platform", report.by_platform), ("category", report.by_category)):
        width = max(len(title), *(len(k) for k in table))
        out.append(f"{title:<{width}}  " + "  ".join(f"{c:>12}" for c in COLUMNS))
        for key, counts in table.items():
            if sum(counts.values()):
                out.append(f"{key:<{width}}  " + "  ".join(f"{counts[c]:>12}" for c in COLUMNS))
        totals = Counter[str]()
        for counts in table.values():
            totals.update(counts)
        out.append(f"{'total':<{width}}  " + "  ".join(f"{totals[c]:>12}" for c in COLUMNS))
        out.append("")
    out.extend(report.lines)
    return "\n".join(out)


def write_csv(plan: Plan, target: Path | TextIO) -> int:
    """The review CSV of every account named, one row per (account, entity); return rows written."""
    rows = sorted(plan.outcomes, key=lambda o: (o.entity_id, o.platform, o.account_id))
    if isinstance(target, Path):
        with target.open("w", encoding="utf-8", newline="") as handle:
            return _write(rows, handle)
    return _write(rows, target)


def _write(rows: Sequence[Outcome], handle: TextIO) -> int:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for o in rows:
        # The import format needs a handle: an account known only by an id is written by that id.
        handle_text = o.handle or o.account_id.partition(":")[2]
        writer.writerow(
            [o.entity_id, o.platform, handle_text, o.account_id, o.url or "", o.state, " ".join(o.sources)]
        )
    return len(rows)
