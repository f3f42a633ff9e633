"""Derive barometre's compact entity registry from etalab's decoupage-administratif files.

    python scripts/build_reference.py [SOURCE_DIR] [--out DIR]

SOURCE_DIR is a folder holding the package's ``communes.json``, ``departements.json``, ``regions.json``,
``epci.json``, ``LICENSE`` and ``package.json`` (or a README naming the version); without it, the pinned
npm package (:data:`SOURCE_PACKAGE`) is fetched with ``npm pack`` into ``.cache/`` once and read from
there. DIR defaults to ``services/common/reference/registry``. Writes ``entities.csv.gz`` (see
services.common.reference), ``README.md`` (attribution, rules and counts) and a copy of the source's
LICENSE. The output depends on the input only: running it twice gives identical bytes, which a unit
test checks against the shipped files.

The rules (also written to README.md, where users read them):
- scope = INSEE's Code officiel géographique for France, i.e. metropolitan France and the five DROM:
  current communes ("commune-actuelle"), départements and régions of zone metro/drom, and every EPCI.
  The collectivités d'outre-mer (zone "com": Saint-Pierre-et-Miquelon, Polynésie, Nouvelle-Calédonie…)
  are listed by INSEE apart; they are left out so that the régions are the 18 and the départements the
  101 everyone counts, and users add what they need with an entities file;
- population = INSEE's population municipale of each commune; a département, a région or an EPCI gets
  the sum over its current communes, so that every figure comes from one vintage and per-1,000
  rankings compare like with like (epci.json's own populationMunicipale is of another vintage);
- an EPCI's département is the one holding most of its member communes' population (ties: the lowest
  code), and its région that département's région: epci.json gives no seat, and the population
  majority is where the intercommunality's audience lives.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a plain script from anywhere, installed or not

from services.common.names import Category  # noqa: E402 - needs the path above
from services.common.reference.entities import (  # noqa: E402 - needs the path above
    ENTITIES_FILE,
    REGISTRY_DIR,
    Entity,
    encode_entities,
)
from services.common.reference.extras import (  # noqa: E402 - needs the path above
    EXTRAS_FILE,
    SOURCE_EPCI_KINDS,
    EntityExtras,
    encode_extras,
)

# The source the shipped registry is derived from: etalab's npm package, at this version.
SOURCE_PACKAGE = "@etalab/decoupage-administratif@6.0.0"
SOURCE_CACHE = REPO / ".cache" / "decoupage-administratif-6.0.0"
CURRENT_COMMUNE = "commune-actuelle"
INSEE_ZONES = frozenset({"metro", "drom"})
LICENSE_COPY = "LICENSE.decoupage-administratif"


def _load(source: Path, name: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads((source / name).read_text(encoding="utf-8"))
    return rows


def build_entities(source: Path) -> list[Entity]:
    """Every entity of the registry, from the four JSON files of ``source``."""
    communes = [
        c for c in _load(source, "communes.json") if c["type"] == CURRENT_COMMUNE and c["zone"] in INSEE_ZONES
    ]
    departements = [d for d in _load(source, "departements.json") if d["zone"] in INSEE_ZONES]
    regions = [r for r in _load(source, "regions.json") if r["zone"] in INSEE_ZONES]
    epcis = _load(source, "epci.json")

    population = {c["code"]: c.get("population") for c in communes}
    commune_departement = {c["code"]: c["departement"] for c in communes}
    region_of_departement = {d["code"]: d["region"] for d in departements}

    def total(codes: Iterable[str]) -> int:
        return sum(population[code] or 0 for code in codes)

    by_departement: dict[str, list[str]] = defaultdict(list)
    by_region: dict[str, list[str]] = defaultdict(list)
    for c in communes:
        by_departement[c["departement"]].append(c["code"])
        by_region[c["region"]].append(c["code"])

    entities = [
        Entity(
            f"{Category.COMMUNE.kind}:{c['code']}",
            c["nom"],
            Category.COMMUNE,
            c.get("population"),
            c["departement"],
            c["region"],
        )
        for c in communes
    ]
    entities += [
        Entity(
            f"{Category.DEPARTEMENT.kind}:{d['code']}",
            d["nom"],
            Category.DEPARTEMENT,
            total(by_departement[d["code"]]),
            d["code"],
            d["region"],
        )
        for d in departements
    ]
    entities += [
        Entity(
            f"{Category.REGION.kind}:{r['code']}",
            r["nom"],
            Category.REGION,
            total(by_region[r["code"]]),
            None,
            r["code"],
        )
        for r in regions
    ]
    for e in epcis:
        members = [m["code"] for m in e["membres"]]
        unknown = [code for code in members if code not in population]
        if unknown:
            raise ValueError(f"EPCI {e['code']} has members outside the current communes: {unknown}")
        weight: Counter[str] = Counter()
        for code in members:
            weight[commune_departement[code]] += population[code] or 0
        # Most population first, then the lowest code: a deterministic answer for ties.
        departement = min(weight, key=lambda dep: (-weight[dep], dep))
        entities.append(
            Entity(
                f"{Category.EPCI.kind}:{e['code']}",
                e["nom"],
                Category.EPCI,
                total(members),
                departement,
                region_of_departement[departement],
            )
        )
    return entities


def build_extras(source: Path) -> list[EntityExtras]:
    """Each current commune's postal codes and each EPCI's nature (services.common.reference.extras)."""
    communes = [
        c for c in _load(source, "communes.json") if c["type"] == CURRENT_COMMUNE and c["zone"] in INSEE_ZONES
    ]
    extras = [
        EntityExtras(
            f"{Category.COMMUNE.kind}:{c['code']}", None, tuple(sorted(set(c.get("codesPostaux") or [])))
        )
        for c in communes
    ]
    extras += [
        EntityExtras(f"{Category.EPCI.kind}:{e['code']}", SOURCE_EPCI_KINDS[e["type"]])
        for e in _load(source, "epci.json")
    ]
    return extras


def count_left_out(source: Path) -> dict[Category, int]:
    """How many current communes, départements and régions of the source are out of scope (zone com)."""
    files = {
        Category.COMMUNE: "communes.json",
        Category.DEPARTEMENT: "departements.json",
        Category.REGION: "regions.json",
    }
    return {
        category: sum(
            1
            for row in _load(source, name)
            if row.get("type", CURRENT_COMMUNE) == CURRENT_COMMUNE and row["zone"] not in INSEE_ZONES
        )
        for category, name in files.items()
    }


def fetch_source(cache: Path = SOURCE_CACHE) -> Path:
    """The pinned package's data folder (its JSON files, LICENSE and package.json), fetched from the
    npm registry with ``npm pack`` the first time; RuntimeError when npm cannot fetch it."""
    if (cache / "communes.json").is_file():
        return cache
    with tempfile.TemporaryDirectory() as tmp:
        try:
            done = subprocess.run(
                ["npm", "pack", SOURCE_PACKAGE, "--silent", "--pack-destination", tmp],
                capture_output=True,
                text=True,
                timeout=120,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"cannot run npm to fetch {SOURCE_PACKAGE}: {exc}") from exc
        if done.returncode != 0:
            raise RuntimeError(f"npm pack {SOURCE_PACKAGE} failed: {done.stderr.strip()[-500:]}")
        (archive,) = Path(tmp).glob("*.tgz")
        staging = Path(tmp) / "unpacked"
        with tarfile.open(archive) as tar:
            tar.extractall(staging, filter="data")
        package = staging / "package"
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(cache.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(package / "data", partial)
        for name in ("LICENSE", "package.json", "README.md"):
            shutil.copyfile(package / name, partial / name)
        partial.rename(cache)  # whole or not at all: a half-fetched copy is never read
    return cache


def source_version(source: Path) -> str:
    """The decoupage-administratif version of the source: its package.json, else its README."""
    package = source / "package.json"
    if package.is_file():
        return str(json.loads(package.read_text(encoding="utf-8"))["version"])
    readme = source / "README.md"
    match = re.search(r"version\s+([0-9]+\.[0-9]+\.[0-9]+)", readme.read_text(encoding="utf-8"))
    if match is None:
        raise ValueError(f"no version found in {readme}; pass --source-version")
    return match.group(1)


def render_readme(entities: list[Entity], version: str, left_out: dict[Category, int]) -> str:
    """The README next to the data: attribution, what the file holds, the rules, the counts."""
    counts = Counter(entity.category for entity in entities)
    people = Counter[Category]()
    for entity in entities:
        people[entity.category] += entity.population or 0
    without = sum(1 for entity in entities if entity.population is None)
    known = "Every entity has a known population" if not without else f"{without} entities have no population"
    rows = "\n".join(
        f"| {category.value} | `{category.kind}:` | {counts[category]:,} | {people[category]:,} |"
        for category in Category
    )
    return f"""# barometre's entity registry

`entities.csv.gz` is barometre's registry of French local governments: gzip-compressed UTF-8 CSV with
the columns `entity_id,name,category,population,departement,region` (the columns of an entities import
file), sorted by category then entity_id. It is generated by `scripts/build_reference.py`; do not edit it
by hand, regenerate it.

## Attribution
Derived from the npm package `@etalab/decoupage-administratif` version {version} (© Etalab, MIT
licence, see `{LICENSE_COPY}`), whose figures come from INSEE's Code officiel géographique and
population tables, published under the Licence Ouverte 2.0 (Etalab): source INSEE, Code officiel
géographique.

## What is in it
| category | id prefix | entities | population (sum of the column) |
|---|---|---:|---:|
{rows}

{known}. Populations are INSEE's population municipale. Left out (collectivités d'outre-mer):
{left_out[Category.COMMUNE]} communes, {left_out[Category.DEPARTEMENT]} départements and \
{left_out[Category.REGION]} régions of the source.

## Rules
- Scope: INSEE's Code officiel géographique for France, i.e. metropolitan France and the five DROM:
  current communes (type `commune-actuelle`), départements and régions of zone metro/drom, and every EPCI.
  The collectivités d'outre-mer (zone `com`) are listed by INSEE apart and are left out, so the régions
  are the 18 and the départements the 101 everyone counts; add what you need with an entities file.
- A commune's population is its `population`. A département's, a région's and an EPCI's is the sum
  over their current communes: one vintage for every figure, so per-1,000-inhabitant rankings compare
  like with like (epci.json's own `populationMunicipale` is of another vintage and differs slightly).
- An EPCI's `departement` is the département holding most of its member communes' population (ties: the
  lowest code) and its `region` that département's région; epci.json does not give the seat.
- A département's `departement` is its own code and a région's `region` its own code, so that filtering
  by territory needs no special case; a région has no `departement`.

## entity_extras.csv.gz
What an entities file has no column for, from the same source: columns `entity_id,epci_kind,postal_codes`,
sorted by entity_id. `postal_codes` (communes: La Poste's codes, space-separated, from `codesPostaux`)
lets the search find a commune by postal code; `epci_kind` (EPCI: `metropole`, `communaute_urbaine`,
`communaute_agglomeration`, `communaute_communes`, from epci.json's `type`; `MET69`, the Métropole de
Lyon, is a `metropole`) gives the EPCI strata (docs/SCORING.md, "Strata").
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "source",
        nargs="?",
        type=Path,
        default=None,
        help=f"decoupage-administratif dir (default: {SOURCE_PACKAGE})",
    )
    parser.add_argument("--out", type=Path, default=REGISTRY_DIR, help="output directory")
    parser.add_argument(
        "--source-version", help="version of decoupage-administratif (default: from its README)"
    )
    args = parser.parse_args(argv)

    source: Path = args.source if args.source is not None else fetch_source()
    out: Path = args.out
    entities = build_entities(source)
    version = args.source_version or source_version(source)
    out.mkdir(parents=True, exist_ok=True)
    (out / ENTITIES_FILE.name).write_bytes(encode_entities(entities))
    (out / EXTRAS_FILE.name).write_bytes(encode_extras(build_extras(source)))
    readme = render_readme(entities, version, count_left_out(source))
    (out / "README.md").write_text(readme, encoding="utf-8")
    shutil.copyfile(source / "LICENSE", out / LICENSE_COPY)
    counts = Counter(entity.category.value for entity in entities)
    print(f"wrote {len(entities):,} entities to {out / ENTITIES_FILE.name}: {dict(counts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
