"""The benchmarks name barometre's ClickHouse tables through ``Table``, not as literals."""

from __future__ import annotations

import re
from pathlib import Path

from services.common.names import Table

BENCH = Path(__file__).resolve().parents[2] / "bench"
_NAMES = "|".join(sorted((t.value for t in Table), key=len, reverse=True))
# "{db}.snapshots" in SQL, or tables["snapshots"] / ("snapshots", ...) where rows are looked up by table.
_LITERAL = re.compile(rf"\}}\.(?:{_NAMES})\b|tables\[\s*[\"'](?:{_NAMES})[\"']")


def test_bench_sql_names_tables_through_the_enum() -> None:
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(BENCH.glob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _LITERAL.search(line)
    ]
    assert found == [], "use services.common.names.Table:\n" + "\n".join(found)
