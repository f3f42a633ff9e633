"""The shipped entity registry (services/common/reference/registry/), the script that builds it, and the
parsers of the user's import files."""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from services.common.names import Category, Platform
from services.common.reference import (
    ENTITIES_FILE,
    REGISTRY_DIR,
    AccountRecord,
    Entity,
    PanelMember,
    RowError,
    collect,
    entities_by_id,
    load_entities,
    parse_accounts_csv,
    parse_entities_csv,
    parse_panel_csv,
)
from services.common.reference.entities import decode_entities, encode_entities

REPO = Path(__file__).resolve().parents[2]


def _source() -> Path | None:
    """The package the registry is derived from, fetched by the script itself (npm, once, into .cache)."""
    try:
        path: Path = _script().fetch_source()
    except RuntimeError:
        return None
    return path


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_reference", REPO / "scripts" / "build_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SOURCE = _source() or Path("/nonexistent")
needs_source = pytest.mark.skipif(
    not SOURCE.is_dir(), reason="the decoupage-administratif package could not be fetched from npm"
)


# --- The shipped registry.


def test_counts() -> None:
    counts = Counter(entity.category for entity in load_entities())
    assert counts == {
        Category.COMMUNE: 34_875,  # INSEE's count of communes on 1 January 2025 (metropolitan France + DROM)
        Category.DEPARTEMENT: 101,
        Category.REGION: 18,
        Category.EPCI: 1_255,
    }


@needs_source
def test_counts_match_the_source() -> None:
    communes = json.loads((SOURCE / "communes.json").read_text(encoding="utf-8"))
    current = [c for c in communes if c["type"] == "commune-actuelle"]
    assert len(current) == 34_969  # the source README's figure, collectivités d'outre-mer included
    in_scope = [c for c in current if c["zone"] != "com"]
    registry = entities_by_id()
    assert {f"COM:{c['code']}" for c in in_scope} == {
        e.entity_id for e in registry.values() if e.category is Category.COMMUNE
    }
    epcis = json.loads((SOURCE / "epci.json").read_text(encoding="utf-8"))
    assert len(epcis) == sum(1 for e in registry.values() if e.category is Category.EPCI)


def test_readme_states_the_counts_of_the_file() -> None:
    readme = (REGISTRY_DIR / "README.md").read_text(encoding="utf-8")
    counts = Counter(entity.category for entity in load_entities())
    for category in Category:
        assert re.search(rf"\| {category.value} \| `{category.kind}:` \| {counts[category]:,} \|", readme)
    assert "decoupage-administratif` version 6.0.0" in readme
    assert "MIT" in readme
    assert "Licence Ouverte 2.0" in readme
    assert (REGISTRY_DIR / "LICENSE.decoupage-administratif").read_text(encoding="utf-8").startswith("MIT")


def test_known_entities() -> None:
    registry = entities_by_id()
    assert registry["COM:38185"] == Entity("COM:38185", "Grenoble", Category.COMMUNE, 156_140, "38", "84")
    assert registry["COM:2A004"].name == "Ajaccio"
    assert registry["DEP:2A"] == Entity("DEP:2A", "Corse-du-Sud", Category.DEPARTEMENT, 168_306, "2A", "94")
    assert registry["DEP:971"].name == "Guadeloupe"
    assert registry["DEP:971"].region == "01"
    assert registry["REG:84"].name == "Auvergne-Rhône-Alpes"
    assert registry["REG:84"].departement is None
    metropole = registry["EPCI:200040715"]
    assert metropole.name == "Grenoble-Alpes-Métropole"
    assert (metropole.departement, metropole.region) == ("38", "84")
    assert "DEP:975" not in registry  # a collectivité d'outre-mer, out of INSEE's COG scope
    assert "REG:22" not in registry  # Picardie, a former région: users import it if they want it


def test_aggregate_populations_are_sums_of_communes() -> None:
    entities = load_entities()
    communes = [e for e in entities if e.category is Category.COMMUNE]
    by_departement: Counter[str] = Counter()
    by_region: Counter[str] = Counter()
    for commune in communes:
        assert commune.population is not None
        assert commune.departement is not None and commune.region is not None
        by_departement[commune.departement] += commune.population
        by_region[commune.region] += commune.population
    for entity in entities:
        if entity.category is Category.DEPARTEMENT:
            assert entity.population == by_departement[entity.entity_id.removeprefix("DEP:")]
        if entity.category is Category.REGION:
            assert entity.population == by_region[entity.entity_id.removeprefix("REG:")]
    assert sum(by_region.values()) == 68_350_798


def test_territories_point_at_entities_of_the_registry() -> None:
    registry = entities_by_id()
    for entity in registry.values():
        if entity.departement is not None:
            assert registry[f"DEP:{entity.departement}"].region == entity.region, entity
        if entity.category is not Category.REGION:
            assert f"REG:{entity.region}" in registry, entity


@needs_source
def test_epci_territory_is_where_most_of_its_population_lives() -> None:
    registry = entities_by_id()
    epcis = json.loads((SOURCE / "epci.json").read_text(encoding="utf-8"))
    # CA du Grand Avignon spans Vaucluse (84) and Gard (30); most of its people live in Vaucluse.
    avignon = next(e for e in epcis if e["nom"].startswith("CA du Grand Avignon"))
    weight: Counter[str] = Counter()
    for member in avignon["membres"]:
        commune = registry[f"COM:{member['code']}"]
        assert commune.departement is not None and commune.population is not None
        weight[commune.departement] += commune.population
    assert len(weight) > 1
    entity = registry[f"EPCI:{avignon['code']}"]
    assert entity.departement == weight.most_common(1)[0][0] == "84"
    assert entity.population == sum(weight.values())


def test_shipped_file_passes_the_import_validation() -> None:
    lines = gzip.decompress(ENTITIES_FILE.read_bytes()).decode("utf-8").splitlines()
    good, bad = collect(parse_entities_csv(lines))
    assert bad == []
    assert [entity for _, entity in good] == load_entities()


def test_loading_is_fast_and_cached() -> None:
    data = ENTITIES_FILE.read_bytes()
    best = min(_timed(lambda: decode_entities(data)) for _ in range(3))
    assert best < 0.5, f"decoding the registry took {best:.3f} s"
    assert load_entities() == load_entities()
    assert entities_by_id() is entities_by_id()


def _timed(work: Any) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


@needs_source
def test_regeneration_gives_identical_bytes(tmp_path: Path) -> None:
    script = _script()
    for out in (tmp_path / "a", tmp_path / "b"):
        assert script.main([str(SOURCE), "--out", str(out)]) == 0
    for name in ("entities.csv.gz", "README.md", "LICENSE.decoupage-administratif"):
        first = (tmp_path / "a" / name).read_bytes()
        assert first == (tmp_path / "b" / name).read_bytes(), name
        assert first == (REGISTRY_DIR / name).read_bytes(), f"{name} is stale: run scripts/build_reference.py"


def test_encoding_ignores_input_order() -> None:
    entities = load_entities()[:50]
    assert encode_entities(entities) == encode_entities(reversed(entities))
    assert decode_entities(encode_entities(entities)) == tuple(entities)


# --- Entities files.


def test_entities_file_good_and_bad_rows() -> None:
    lines = [
        "entity_id,name,category,population,departement,region",
        "REG:22,Picardie,region,1900000,,22",  # 2: a former région
        "COM:BE-21004,Bruxelles,commune,,,",  # 3: a foreign municipality
        "COM:38185,Grenoble (mairie),,156140,DEP:38,REG:84",  # 4: ids accepted for codes, category derived
        "COM:3818,Typo,commune,1,38,84",  # 5
        "COM:38186,Wrong kind,departement,1,38,84",  # 6
        "COM:38187,No people,commune,beaucoup,38,84",  # 7
        "COM:38188,,commune,1,38,84",  # 8
        "",  # 9: blank lines are skipped
        "DEP:38,Isère,departement,1271166,39,84",  # 10: a département is its own departement
        "COM:38189,Bad region,commune,1,38,8",  # 11
        "COM:38190,Too,many,columns,1,38,84",  # 12
        "REG:22,Picardie again,region,1,,22",  # 13
        "COM:38191,Category,town,1,38,84",  # 14
    ]
    good, bad = collect(parse_entities_csv(lines))
    assert [(line, entity.entity_id) for line, entity in good] == [
        (2, "REG:22"),
        (3, "COM:BE-21004"),
        (4, "COM:38185"),
    ]
    assert good[0][1] == Entity("REG:22", "Picardie", Category.REGION, 1_900_000, None, "22")
    assert good[2][1] == Entity("COM:38185", "Grenoble (mairie)", Category.COMMUNE, 156_140, "38", "84")
    assert [line for line, _ in bad] == [5, 6, 7, 8, 10, 11, 12, 13, 14]
    reasons = dict(bad)
    assert "entity_id 'COM:3818' is not KIND:code" in reasons[5]
    assert "does not match COM:38186 (a commune)" in reasons[6]
    assert "population 'beaucoup'" in reasons[7]
    assert reasons[8] == "name is empty"
    assert "should be its own code '38'" in reasons[10]
    assert "region '8'" in reasons[11]
    assert reasons[12] == "7 values for 6 columns (entity_id,name,category,population,departement,region)"
    assert reasons[13] == "duplicate entity_id REG:22 (first on line 2)"
    assert "unknown category 'town'" in reasons[14]


def test_header_problems_stop_the_file() -> None:
    # A file without its header: one error on line 1, and no row is taken for what it is not.
    [(line, error)] = list(parse_entities_csv(["COM:38185,Grenoble,commune,1,38,84", "COM:1,x"]))
    assert line == 1
    assert isinstance(error, RowError)
    assert error.message.startswith("unknown column(s) 'com:38185', 'grenoble'")
    assert "missing column(s) name" in _message(parse_entities_csv(["entity_id,population"]))
    assert "named twice: name" in _message(parse_entities_csv(["entity_id,name,name"]))
    assert "empty file" in _message(parse_entities_csv([]))
    assert "empty file" in _message(parse_panel_csv(["", "  "]))


def _message(rows: Any) -> str:
    results = list(rows)
    assert len(results) == 1
    line, error = results[0]
    assert isinstance(error, RowError)
    assert line >= 1
    message: str = error.message
    return message


def test_file_on_disk_with_bom_semicolons_crlf_and_bad_bytes(tmp_path: Path) -> None:
    path = tmp_path / "entites.csv"
    path.write_bytes(
        b"\xef\xbb\xbfEntity_ID;Name;Population\r\n"
        b"COM:38185;Grenoble;156140\r\n"
        b"COM:69123;Lyon \xe9;522250\r\n"  # Latin-1, not UTF-8
        b'COM:75056;"Paris\r\n(ville)";2103778\r\n'  # a quoted value over two lines
        b"COM:13055;Marseille;873076\r\n"
    )
    good, bad = collect(parse_entities_csv(path))
    assert [(line, entity.entity_id) for line, entity in good] == [
        (2, "COM:38185"),
        (4, "COM:75056"),
        (6, "COM:13055"),
    ]
    assert good[1][1].name == "Paris\r\n(ville)"
    assert bad == [(3, "not UTF-8 text: save the file as UTF-8")]
    assert collect(parse_entities_csv(str(path))) == (good, bad)


# --- Accounts files.


def test_accounts_file() -> None:
    lines = [
        "entity_id,platform,handle,account_id,url",
        "COM:38185,facebook,VilledeGrenoble,facebook:123456789,https://www.facebook.com/VilledeGrenoble",
        "COM:38185,twitter,@VilleGrenoble,,",  # 3: twitter accepted as x; no id: the handle lower-cased
        "COM:38185,youtube,,youtube:UCa1B2c3,",  # 4: no handle, a case-sensitive id
        "COM:38185,myspace,grenoble,,",  # 5
        "COM:38185,x,,,",  # 6
        "COM:38185,instagram,grenoble,facebook:1,",  # 7
        "COM:38185,x,villegrenoble,,",  # 8: the same account as line 3
        "COM:99999,x,other,,",  # 9: not a known entity
        "COM:38185,tiktok,grenoble,,ftp://tiktok.com/@grenoble",  # 10
        "DEP:38,mastodon,@isere@mastodon.social,,",  # 11
    ]
    known = {"COM:38185", "DEP:38"}
    good, bad = collect(parse_accounts_csv(lines, known_entities=known))
    records = dict(good)
    assert sorted(records) == [2, 3, 4, 11]
    assert records[2] == AccountRecord(
        "COM:38185",
        Platform.FACEBOOK,
        "facebook:123456789",
        "VilledeGrenoble",
        "https://www.facebook.com/VilledeGrenoble",
    )
    assert records[3] == AccountRecord("COM:38185", Platform.X, "x:villegrenoble", "@VilleGrenoble", None)
    assert records[4].account_id == "youtube:UCa1B2c3"
    assert records[4].handle is None
    assert records[11].account_id == "mastodon:isere@mastodon.social"
    reasons = dict(bad)
    assert sorted(reasons) == [5, 6, 7, 8, 9, 10]
    assert "unknown platform 'myspace'; allowed: facebook, x," in reasons[5]
    assert "twitter is accepted as x" in reasons[5]
    assert reasons[6] == "a handle, a url or an account_id is needed"
    assert reasons[7] == "account_id 'facebook:1' is on facebook, not on instagram"
    assert reasons[8] == "duplicate account_id x:villegrenoble (first on line 3)"
    assert reasons[9] == "unknown entity COM:99999 (import it with an entities file first)"
    assert "not an http(s) address" in reasons[10]


def test_accounts_file_minimal_columns() -> None:
    good, bad = collect(parse_accounts_csv(["entity_id,platform,handle", "REG:84,linkedin,Region-AURA"]))
    assert bad == []
    assert good == [
        (2, AccountRecord("REG:84", Platform.LINKEDIN, "linkedin:region-aura", "Region-AURA", None))
    ]
    assert "missing column(s) handle" in _message(parse_accounts_csv(["entity_id,platform"]))


# --- Panel files.


def test_panel_file() -> None:
    lines = [
        "entity_id,panel",
        "COM:38185,",  # 2: the default panel
        "COM:69123,grandes-villes",
        "COM:38185,grandes-villes",
        "COM:38185,default",  # 5: already in the default panel (line 2)
        "38185,default",  # 6
        "COM:13055,grandes villes",  # 7
    ]
    good, bad = collect(parse_panel_csv(lines))
    assert good == [
        (2, PanelMember("COM:38185", "default")),
        (3, PanelMember("COM:69123", "grandes-villes")),
        (4, PanelMember("COM:38185", "grandes-villes")),
    ]
    assert [line for line, _ in bad] == [5, 6, 7]
    assert "first on line 2" in bad[0][1]
    assert "panel name 'grandes villes'" in bad[2][1]


def test_panel_file_without_panel_column_and_a_named_default() -> None:
    good, bad = collect(parse_panel_csv(["entity_id", "DEP:2A", "DEP:2B"], default_panel="corse"))
    assert bad == []
    assert [member for _, member in good] == [PanelMember("DEP:2A", "corse"), PanelMember("DEP:2B", "corse")]
    with pytest.raises(ValueError, match="panel name"):
        list(parse_panel_csv(["entity_id"], default_panel="no spaces please"))


def test_panel_file_against_the_registry() -> None:
    good, bad = collect(
        parse_panel_csv(["entity_id", "COM:38185", "REG:22"], known_entities=entities_by_id())
    )
    assert [member.entity_id for _, member in good] == ["COM:38185"]
    assert bad == [(3, "unknown entity REG:22 (import it with an entities file first)")]
