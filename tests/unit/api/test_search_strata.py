"""The entity search's folding and ranking (services/api/search.py), the strata's bands and natures
(services/api/strata.py) and the shipped extras they read (postal codes, EPCI natures)."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import pytest

from services.api.search import Catalogue, EntityIndex, build, fold, search
from services.api.strata import Stratum, stratum_of
from services.common.reference import load_entities
from services.common.reference.extras import (
    EXTRAS_FILE,
    EntityExtras,
    EpciKind,
    decode_extras,
    encode_extras,
    epci_ids,
    extras_by_id,
)

REPO = Path(__file__).resolve().parents[3]


def rows() -> list[tuple[object, ...]]:
    return [
        (e.entity_id, e.name, e.category.value, e.population, e.departement, e.region)
        for e in load_entities()
    ]


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue(build(rows()))


def ids(catalogue: Catalogue, q: str, limit: int = 5, category: str | None = None) -> list[tuple[str, str]]:
    return [(f.entity.entity_id, f.match.value) for f in search(catalogue, q, limit, category)]


def test_fold() -> None:
    assert fold("Saint-Étienne") == "saint etienne"
    assert fold("L'Île-d'Yeu") == "l ile d yeu"
    assert fold("Œuf-en-Ternois") == "oeuf en ternois"
    assert fold("  CC du Pays de Rouffach (CCPR) ") == "cc du pays de rouffach ccpr"
    assert fold("---") == ""


def test_tiers_then_population(catalogue: Catalogue) -> None:
    assert ids(catalogue, "grenoble", 2) == [("COM:38185", "name"), ("EPCI:200040715", "prefix")]
    assert ids(catalogue, "SAINT ÉTIENNE", 1) == [("COM:42218", "name")]
    assert ids(catalogue, "38", 2) == [("DEP:38", "code"), ("COM:38185", "code_prefix")]
    assert ids(catalogue, "38100", 1) == [("COM:38185", "code")]
    assert ids(catalogue, "com:69123") == [("COM:69123", "code")]
    assert ids(catalogue, "renoble") == [("EPCI:200040715", "substring"), ("COM:38185", "substring")]
    assert ids(catalogue, "paris", 5, "departement") == [("DEP:75", "name")]
    # Every match of a tier comes before the next tier, whatever the populations.
    found = search(catalogue, "lyon", 50)
    tiers = [f.match.value for f in found]
    assert tiers == sorted(tiers, key=["code", "name", "prefix", "word", "code_prefix", "substring"].index)
    for a, b in itertools.pairwise(found):
        if a.match is b.match:
            assert (a.entity.population or -1) >= (b.entity.population or -1)
    assert ids(catalogue, "zzqqxx") == [] and ids(catalogue, "") == []


def test_index_rebuilds_only_when_the_registry_changes() -> None:
    loads: list[int] = []
    version = {"v": 1}
    data = [("COM:00001", "Alpha", "commune", 10, "01", "84")]

    def load() -> list[tuple[object, ...]]:
        loads.append(1)
        return list(data)

    index = EntityIndex(lambda: version["v"], load, check_s=0)
    assert [f.entity.entity_id for f in index.search("alpha", 5)] == ["COM:00001"]
    index.search("alpha", 5)
    assert len(loads) == 1
    data.append(("COM:00002", "Alphaville", "commune", 20, "01", "84"))
    version["v"] = 2
    assert [f.entity.entity_id for f in index.search("alpha", 5)] == ["COM:00001", "COM:00002"]
    assert len(loads) == 2


def test_bands_and_natures() -> None:
    edges = {0: "commune_lt_3500", 3_499: "commune_lt_3500", 3_500: "commune_3500_19999",
             19_999: "commune_3500_19999", 20_000: "commune_20000_99999", 99_999: "commune_20000_99999",
             100_000: "commune_100000_plus", 2_100_000: "commune_100000_plus"}  # fmt: skip
    for population, stratum in edges.items():
        assert stratum_of("COM:00001", "commune", population) == Stratum(stratum), population
    assert stratum_of("COM:00001", "commune", None) is None
    assert stratum_of("DEP:38", "departement", 1_000_000) is None
    assert stratum_of("EPCI:200046977", "epci", 1) is Stratum.METROPOLE  # Métropole de Lyon (MET69)
    assert stratum_of("EPCI:200040715", "epci", 1) is Stratum.METROPOLE
    assert stratum_of("EPCI:999999999", "epci", 1) is None
    assert {s.category.value for s in Stratum} == {"commune", "epci"}
    for kind in EpciKind:
        assert Stratum(kind.value).category.value == "epci"
    sql, params = Stratum.COMMUNE_100000_PLUS.condition()
    assert "stratum_max" not in sql and params == {"stratum_min": 100_000}


def test_shipped_extras() -> None:
    extras = extras_by_id()
    entities = {e.entity_id: e for e in load_entities()}
    communes = [i for i, e in entities.items() if e.category.value == "commune"]
    epcis = [i for i, e in entities.items() if e.category.value == "epci"]
    assert set(extras) == set(communes) | set(epcis)
    assert all(extras[i].postal_codes for i in communes)
    assert all(extras[i].epci_kind is not None for i in epcis)
    assert [len(epci_ids(k)) for k in EpciKind] == [22, 14, 230, 989]
    assert extras["COM:75056"].postal_codes[:2] == ("75001", "75002")
    sample = (EntityExtras("EPCI:1", EpciKind.METROPOLE), EntityExtras("COM:2", None, ("01000", "01001")))
    assert decode_extras(encode_extras(sample)) == tuple(reversed(sample))  # sorted by id


def test_extras_regenerate_identically(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("build_reference", REPO / "scripts" / "build_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        source = module.fetch_source()
    except RuntimeError:
        pytest.skip("the decoupage-administratif package could not be fetched from npm")
    assert module.main([str(source), "--out", str(tmp_path)]) == 0
    assert (tmp_path / EXTRAS_FILE.name).read_bytes() == EXTRAS_FILE.read_bytes(), (
        "run scripts/build_reference.py"
    )
