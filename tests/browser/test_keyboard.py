"""Keyboard only: the skip link, then Tab through the overview reaches every main action, each with a visible
focus ring, and Enter follows it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import seed, sign_in

pytestmark = pytest.mark.browser

MAIN_ACTIONS = (
    "Start a broadcast",
    "Routing board",
    "JMA auto-trigger",
    "Declare an incident",
    "Care follow-up list",
    "Stockpile by site",
    "Plan a drill",
)
FOCUSED = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  return {
    tag: el.tagName.toLowerCase(),
    id: el.id,
    text: (el.innerText || el.textContent || "").trim(),
    outline: style.outlineStyle,
    width: parseFloat(style.outlineWidth),
  };
}"""


def test_keyboard_reaches_the_main_actions(live_app: Any, page: Any) -> None:
    center = seed(live_app.app)
    sign_in(page, live_app.url, center.emails["crisis_manager"])

    page.keyboard.press("Tab")
    first = page.evaluate(FOCUSED)
    assert first["text"] == "Skip to content"
    assert first["outline"] != "none" and first["width"] >= 2
    page.keyboard.press("Enter")
    assert page.evaluate(FOCUSED)["id"] == "main"

    reached: list[str] = []
    for _ in range(80):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused["tag"] == "body":
            break
        assert focused["outline"] != "none" and focused["width"] >= 2, f"no visible focus on {focused}"
        reached.append(focused["text"])
    missing = [action for action in MAIN_ACTIONS if action not in reached]
    assert missing == [], reached
    # Nothing in the header is visited again: the skip link went straight to the content.
    assert "Sign out" not in reached

    # And Enter on an action follows it.
    page.goto(f"{live_app.url}/dashboard")
    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate(FOCUSED)["text"] == "Start a broadcast":
            break
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/broadcasts/new$"))
