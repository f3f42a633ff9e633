"""axe-core on a dashboard page: ``assert_accessible(page)`` fails, listing every violation, when the page
breaks a WCAG 2.0 or 2.1 level A or AA rule that axe checks.

axe-core itself comes from the ``axe-playwright-python`` package (its bundled ``axe.min.js``, pinned in
constraints.txt): nothing is fetched at test time. The script is injected with Playwright's
``page.evaluate`` (not a ``<script>`` tag), so the page's own Content-Security-Policy does not apply.

Any browser test may call it, after the page shows what it should (axe checks what is rendered now)::

    from tests.browser.axe import assert_accessible

    page.goto(dashboard.url + "/")
    page.locator("#classement tbody tr").first.wait_for()
    assert_accessible(page)                        # the whole page
    assert_accessible(page, include="#carte")      # one region only
    assert_accessible(page, exclude=["#carte svg"])  # say why in the test if you ever need this

What axe cannot see (the contrast of chart lines against their background, the keyboard path, whether a
chart says "no data" honestly) is tested elsewhere: tests/unit/api/test_dashboard_colours.py,
tests/browser/test_keyboard.py, tests/browser/test_accessibility.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tests.browser.conftest import _unavailable

if TYPE_CHECKING:
    from playwright.sync_api import Page

# The WCAG 2.1 AA rule set: level A and AA rules of WCAG 2.0 and those WCAG 2.1 added.
WCAG_AA_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")

# Wait, before axe runs, until no element of the page is still loading (aria-busy) or animating in:
# a half-drawn table or a fading row gives violations that no user sees for long. A busy button is not
# waited for: its action may be waiting for the user (alert-actions.js: acknowledge, while the token dialog
# is open), which is a state to check, not a drawing to wait for.
_SETTLED = """() => document.readyState === "complete"
  && !document.querySelector('[aria-busy="true"]:not(button)')
  && document.getAnimations().every((a) => a.playState !== "running")"""


def axe_version(page: Page) -> str:
    _inject(page)
    return str(page.evaluate("() => axe.version"))


def run_axe(
    page: Page,
    *,
    include: str | None = None,
    exclude: Sequence[str] = (),
    tags: Sequence[str] = WCAG_AA_TAGS,
) -> list[dict[str, Any]]:
    """The violations axe finds on ``page`` (or in ``include``, less ``exclude``), as axe reports them."""
    page.wait_for_function(_SETTLED, timeout=15_000)
    _inject(page)
    context: dict[str, Any] = {"include": [[include]] if include else [["html"]]}
    if exclude:
        context["exclude"] = [[selector] for selector in exclude]
    options = {"runOnly": {"type": "tag", "values": list(tags)}, "resultTypes": ["violations"]}
    results = page.evaluate("([context, options]) => axe.run(context, options)", [context, options])
    return list(results["violations"])


def assert_accessible(
    page: Page,
    *,
    include: str | None = None,
    exclude: Sequence[str] = (),
    tags: Sequence[str] = WCAG_AA_TAGS,
) -> None:
    """Fail, listing the rule, impact, elements and axe's explanation of each violation, unless axe finds
    none on ``page`` (see :func:`run_axe` for ``include`` and ``exclude``)."""
    violations = run_axe(page, include=include, exclude=exclude, tags=tags)
    assert not violations, describe(violations, page.url)


def describe(violations: Sequence[dict[str, Any]], url: str) -> str:
    """A readable list of axe's violations: what to fix, and where."""
    lines = [f"axe-core found {len(violations)} WCAG 2.1 A/AA violation(s) on {url}:"]
    for v in violations:
        lines.append(f"- {v['id']} ({v.get('impact')}): {v['help']} [{v.get('helpUrl', '')}]")
        for node in v["nodes"][:10]:
            target = " ".join(str(t) for t in node.get("target", []))
            summary = " ".join(str(node.get("failureSummary") or "").split())
            lines.append(f"    {target}: {summary}")
            lines.append(f"      {str(node.get('html', ''))[:200]}")
        if len(v["nodes"]) > 10:
            lines.append(f"    … and {len(v['nodes']) - 10} more element(s)")
    return "\n".join(lines)


def _inject(page: Page) -> None:
    if page.evaluate("() => typeof window.axe === 'object'"):
        return
    try:
        from axe_playwright_python.base import AXE_SCRIPT  # type: ignore[import-untyped]
    except ImportError:
        # As for playwright itself (conftest.py): skipped, except under CI=true, which must run it.
        _unavailable(
            "the axe-playwright-python package is missing (pip install -c constraints.txt -e '.[dev]')"
        )
    page.evaluate(AXE_SCRIPT)
