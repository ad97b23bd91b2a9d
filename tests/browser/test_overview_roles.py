"""Each role signs in and lands on the overview with its own blocks, and not the others."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import seed, sign_in

pytestmark = pytest.mark.browser

TITLES = {
    "broadcasts": "Safety broadcasts now",
    "sites": "Sites and lines",
    "jma": "JMA bulletins and decisions",
    "incidents": "Incidents and care follow-up",
    "stockpile": "Stockpile warnings",
    "drills": "Drills and corrective actions",
}
BLOCKS_OF = {
    "admin": set(TITLES),
    "crisis_manager": set(TITLES),
    "manager": {"broadcasts", "jma", "incidents", "drills"},
    "supervisor": {"sites", "incidents"},
    "facilities": {"stockpile"},
}


def test_each_role_sees_its_overview(live_app: Any, tabs: Any) -> None:
    center = seed(live_app.app)
    for role, blocks in BLOCKS_OF.items():
        page = tabs.open()
        sign_in(page, live_app.url, center.emails[role])
        assert page.get_by_role("heading", level=1).inner_text() == "Overview"
        shown = set(page.locator("section.block > h2").all_inner_texts())
        assert shown == {TITLES[b] for b in blocks}, role
        # The "everything normal" verdict speaks only of what this role can see.
        verdict = page.locator("section.verdict")
        if blocks & {"broadcasts", "sites", "jma", "incidents"}:
            assert verdict.get_by_role("heading").inner_text().endswith("Everything normal")
        else:
            assert verdict.count() == 0
        assert page.get_by_role("link", name="Overview").get_attribute("aria-current") == "page"


def test_without_javascript_the_overview_is_complete_and_claims_no_refresh(live_app: Any, tabs: Any) -> None:
    center = seed(live_app.app)
    page = tabs.open(java_script_enabled=False)
    sign_in(page, live_app.url, center.emails["admin"])
    assert set(page.locator("section.block > h2").all_inner_texts()) == set(TITLES.values())
    assert page.locator(f'[data-live="site-{center.sites["TKY"]}-state"]').inner_text() == "Normal"
    assert not page.locator("#live-status").is_visible()  # nothing refreshes without the script
    with_script = tabs.open()
    sign_in(with_script, live_app.url, center.emails["admin"])
    assert with_script.locator("#live-status").inner_text() == "· Figures refresh every 5 seconds."
