"""The dashboard map's vendored geometry (services/api/static/vendor/svg-maps/, written by
scripts/vendor_svg_maps.py) has one shape per département of the registry, under its INSEE code, and
ships the licence of each source."""

from __future__ import annotations

import re
from xml.etree import ElementTree

from scripts.vendor_svg_maps import OUT, OVERSEAS, bbox
from services.common.names import Category
from services.common.reference import load_entities

SVG = "{http://www.w3.org/2000/svg}"


def test_every_departement_of_the_registry_has_a_shape_under_its_insee_code() -> None:
    # Files of this repository, not untrusted input.
    metro = ElementTree.parse(OUT / "france.departments.svg").getroot()  # noqa: S314
    overseas = ElementTree.parse(OUT / "outre-mer.svg").getroot()  # noqa: S314
    metro_codes = {p.get("id") for p in metro.iter(f"{SVG}path")}
    insets = {s.get("id"): s for s in overseas.findall(f"{SVG}svg")}
    registry = {e.departement for e in load_entities() if e.category is Category.DEPARTEMENT}
    assert len(metro_codes) == 96 and {"2A", "2B"} <= metro_codes
    assert set(insets) == {code for code, _ in OVERSEAS.values()} == {"971", "972", "973", "974", "976"}
    assert metro_codes | set(insets) == registry
    for code, inset in insets.items():
        path = inset.find(f"{SVG}path")
        assert path is not None
        x, y, w, h = (float(v) for v in (inset.get("viewBox") or "").split())
        bx, by, bw, bh = bbox(path.get("d") or "")
        # The viewBox holds the shape, with a margin.
        assert x < bx and y < by and x + w > bx + bw and y + h > by + bh and bw > 0 and bh > 0, code


def test_the_licences_ship_with_the_files() -> None:
    for name in ("LICENSE.france.departments.md", "LICENSE.world.md"):
        text = (OUT / name).read_text()
        assert "Attribution 4.0 International" in text and "NonCommercial" not in text
    readme = (OUT.parent / "README.md").read_text()
    assert re.search(r"france\.regions.*CC BY-NC", readme, re.S)


def test_bbox_follows_relative_moves_and_closed_subpaths() -> None:
    # A unit square, closed, then a second square moved from the first one's start point.
    assert bbox("m 1,1 1,0 0,1 -1,0 z m 3,0 1,0 0,1 z") == (1.0, 1.0, 4.0, 1.0)
