"""axe-core (from npm) run inside the page, for WCAG 2.2 AA checks."""

import contextlib
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout

AXE_SCRIPT = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
AXE_SOURCE = AXE_SCRIPT.read_text(encoding="utf-8")
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def axe_violations(page) -> list[tuple[str, str, list[str]]]:
    # Evaluated through the DevTools protocol, so the page's strict CSP (which would block an injected
    # <script>) stays on and is exercised by every browser test.
    # A click or key press waits for its navigation to commit, not for the new document to load: run too soon, axe
    # found no documentElement (once, in a clean-clone CI run).
    page.wait_for_load_state("load")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SOURCE)
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_TAGS)
    return [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:5]) for v in result["violations"]]


def assert_accessible(page) -> None:
    violations = axe_violations(page)
    assert violations == [], f"{page.url}: {violations}"


def assert_no_horizontal_scroll(page) -> None:
    # The NHS header moves navigation that does not fit into its "More" menu a moment after a resize (its script
    # is debounced): give the layout up to two seconds to settle before measuring.
    # A function, not an expression: Playwright evaluates it once, inside the DevTools call the CSP allows, then
    # calls it on each animation frame. An expression would be eval'd again on each frame, which the page's CSP
    # refuses whenever the first check is not already true.
    with contextlib.suppress(PlaywrightTimeout):  # still too wide: measured and reported just below
        page.wait_for_function(
            "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth", timeout=2_000
        )
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{page.url} scrolls sideways by {overflow}px"
