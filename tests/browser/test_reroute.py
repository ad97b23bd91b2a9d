"""A supervisor forces Tokyo down on the routing board; the overview open in another tab shows it within seconds,
with the line now going to Osaka, and offers a reload for the changed verdict."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import seed, sign_in

pytestmark = pytest.mark.browser


def test_force_tokyo_down_and_the_overview_follows(live_app: Any, tabs: Any) -> None:
    center = seed(live_app.app)
    overview = tabs.open()
    sign_in(overview, live_app.url, center.emails["supervisor"])
    tky, line = f"site-{center.sites['TKY']}", f"line-{center.line_id}"
    expect(overview.locator(f'[data-live="{tky}-state"]')).to_have_text("Normal")
    expect(overview.locator(f'[data-live="{line}-goes"]')).to_have_text("Agents at TKY")
    overview.evaluate("window.stillTheSamePage = true")

    board = tabs.open()
    sign_in(board, live_app.url, center.emails["supervisor"])
    board.get_by_role("link", name="Routing", exact=True).click()
    tokyo_card = board.locator(".card", has=board.get_by_role("heading", name=re.compile(r"^TKY")))
    tokyo_card.get_by_role("button", name="Mark down").click()
    expect(board.locator(".flash.success")).to_contain_text("TKY")

    state = overview.locator(f'[data-live="{tky}-state"]')
    expect(state).to_have_text("Down", timeout=15_000)
    expect(state).to_have_class(re.compile(r"\bbad\b"))
    expect(overview.locator(f'[data-live="{line}-goes"]')).to_have_text("Agents at OSA (another site)")
    assert overview.evaluate("window.stillTheSamePage") is True
    notice = overview.locator("#layout-notice")
    expect(notice).to_be_visible()
    notice.get_by_role("link", name="Reload the overview").click()
    verdict = overview.locator("section.verdict")
    expect(verdict.get_by_role("heading")).to_contain_text("Needs attention")
    expect(verdict.get_by_role("link", name="Sites not working normally: TKY")).to_be_visible()
