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
