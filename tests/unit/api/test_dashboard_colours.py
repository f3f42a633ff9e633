"""The dashboard's colours meet WCAG 2.1's contrast minimums where axe-core cannot look: each platform's
colour (chart lines and points, swatches, the coloured borders of figures and account cards) is at least
3:1 against the backgrounds it is drawn on (1.4.11, non-text contrast), and the text the presence chart
paints on its canvas ("pas de données") is at least 4.5:1 (1.4.3). Colours are read from the shipped
dashboard.js and dashboard.css, so a new platform or a changed colour is checked as it is."""

from __future__ import annotations

import re

import pytest

from services.common.names import Platform
from services.common.settings import REPO_ROOT

STATIC = REPO_ROOT / "services" / "api" / "static"
DASHBOARD_JS = (STATIC / "dashboard.js").read_text(encoding="utf-8")
DASHBOARD_CSS = (STATIC / "dashboard.css").read_text(encoding="utf-8")


def luminance(colour: str) -> float:
    """Relative luminance of a #rrggbb colour (WCAG 2.1 definition)."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def platform_colours() -> dict[str, str]:
    block = re.search(r"const PLATFORMS = \[(.*?)\];", DASHBOARD_JS, re.S)
    assert block, "PLATFORMS not found in dashboard.js"
    rows = re.findall(r'\["(\w+)", "[^"]*", "(#[0-9a-fA-F]{6})"\]', block.group(1))
    return {platform: colour.lower() for platform, colour in rows}


def css_variable(name: str) -> str:
    found = re.search(rf"--{name}:\s*(#[0-9a-fA-F]{{6}})\s*;", DASHBOARD_CSS)
    assert found, f"--{name} not found in dashboard.css"
    return found.group(1).lower()


# Where platform colours are drawn: the white panels (charts, figures, account cards) and the filter pill
# of a checked platform (its swatch); the page background for anything outside a panel.
BACKGROUNDS = {
    "card": css_variable("card"),
    "brand-soft": css_variable("brand-soft"),
    "bg": css_variable("bg"),
}


def test_the_formula_matches_wcag_reference_values() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#ffffff", "#ffffff") == pytest.approx(1.0)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # the well-known AA grey


def test_every_platform_has_a_colour() -> None:
    assert set(platform_colours()) == {p.value for p in Platform}


@pytest.mark.parametrize("background", sorted(BACKGROUNDS))
def test_platform_colours_reach_3_to_1(background: str) -> None:
    too_low = {
        platform: round(contrast(colour, BACKGROUNDS[background]), 2)
        for platform, colour in platform_colours().items()
        if contrast(colour, BACKGROUNDS[background]) < 3.0
    }
    assert not too_low, f"under 3:1 against --{background} ({BACKGROUNDS[background]}): {too_low}"


def test_the_no_data_band_text_reaches_4_5_to_1() -> None:
    band = re.search(r'ctx\.fillStyle = "(#[0-9a-f]{6})";\s*ctx\.fillRect', DASHBOARD_JS)
    text = re.search(r'ctx\.fillStyle = "(#[0-9a-f]{6})";\s*ctx\.font', DASHBOARD_JS)
    assert band and text, "drawNoData's colours not found in dashboard.js"
    assert contrast(text.group(1), band.group(1)) >= 4.5


# ---------------------------------------------------------------- the map (map.js)
# The map is drawn on a white panel (--card). Its classes with communes present (or a collectivité
# present) are data a reader compares with the legend: each reaches 3:1 against the panel. The light
# classes ("Aucune", absent, out of scope) are light on purpose; each territory is told from the panel
# and from its neighbours by its border, which reaches 3:1 against the panel and every light class. The
# ring of the focused territory (a white halo and a dark line) shows on every class: one of its two
# colours reaches 3:1 against each. (WCAG 1.4.11; the table beside the map gives every figure in text.)
MAP_JS = (STATIC / "map.js").read_text(encoding="utf-8")
LIGHT_KEYS = {"c0", "none", "absent"}


def map_classes() -> dict[str, str]:
    rates = re.search(r"const RATE_CLASSES = \[(.*?)\];", MAP_JS, re.S)
    entity = re.search(r"const ENTITY_CLASSES = \{(.*?)\};", MAP_JS, re.S)
    no_data = re.search(r'const NO_DATA = \{ color: "(#[0-9a-fA-F]{6})"', MAP_JS)
    assert rates and entity and no_data, "the map's classes not found in map.js"
    colours = {
        f"c{k}": c.lower() for k, c in enumerate(re.findall(r'color: "(#[0-9a-fA-F]{6})"', rates.group(1)))
    }
    colours.update(
        {key: c.lower() for key, c in re.findall(r'(\w+): \{ color: "(#[0-9a-fA-F]{6})"', entity.group(1))}
    )
    colours["none"] = no_data.group(1).lower()
    return colours


def css_rule(selector: str, prop: str) -> str:
    found = re.search(
        rf"{re.escape(selector)} \{{[^}}]*?{prop}:\s*(#[0-9a-fA-F]{{6}}|var\(--[\w-]+\))", DASHBOARD_CSS
    )
    assert found, f"{selector} {{ {prop} }} not found in dashboard.css"
    value = found.group(1)
    return css_variable(value[6:-1]) if value.startswith("var(") else value.lower()


def test_the_map_has_its_classes() -> None:
    colours = map_classes()
    assert set(colours) == {"c0", "c1", "c2", "c3", "c4", "c5", "present", "absent", "none"}
    # Sequential: each class of the share darker than the one before, so that darker reads "more".
    shares = [luminance(colours[f"c{k}"]) for k in range(6)]
    assert shares == sorted(shares, reverse=True) and len(set(shares)) == 6


def test_map_classes_with_presence_reach_3_to_1_on_the_panel() -> None:
    too_low = {
        key: round(contrast(colour, BACKGROUNDS["card"]), 2)
        for key, colour in map_classes().items()
        if key not in LIGHT_KEYS and contrast(colour, BACKGROUNDS["card"]) < 3.0
    }
    assert not too_low, f"map classes under 3:1 against the panel: {too_low}"


def test_map_borders_tell_light_territories_apart() -> None:
    border = css_rule(".map-area path", "stroke")
    swatch_border = re.search(
        r"\.map-legend__swatch \{[^}]*border: 1px solid (#[0-9a-fA-F]{6})", DASHBOARD_CSS
    )
    assert swatch_border, ".map-legend__swatch's border not found"
    light = {key: c for key, c in map_classes().items() if key in LIGHT_KEYS} | {"panel": BACKGROUNDS["card"]}
    for name, colour in (
        ("territory border", border),
        ("legend swatch border", swatch_border.group(1).lower()),
    ):
        too_low = {k: round(contrast(colour, c), 2) for k, c in light.items() if contrast(colour, c) < 3.0}
        assert not too_low, f"the map's {name} {colour} under 3:1 against {too_low}"


def test_the_focus_ring_of_the_map_shows_on_every_class() -> None:
    halo = css_rule(".map-focus-mark__halo", "stroke")
    ring = css_rule(".map-focus-mark__ring", "stroke")
    too_low = {
        key: colour
        for key, colour in map_classes().items()
        if max(contrast(halo, colour), contrast(ring, colour)) < 3.0
    }
    assert not too_low, f"the focus ring ({halo}, {ring}) does not show on {too_low}"
