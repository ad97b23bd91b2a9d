"""From the overview one click reaches the place to act: the stockpile of a site that is short, and a drill whose
report prints as a PDF."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from core import db
from core.time import utcnow
from reports import service as reports_service
from tests.browser.conftest import seed, sign_in

pytestmark = pytest.mark.browser


def test_open_the_stockpile_of_a_site_that_is_short(live_app: Any, page: Any) -> None:
    center = seed(live_app.app)
    sign_in(page, live_app.url, center.emails["facilities"])
    block = page.locator("#block-stockpile")
    expect(block.get_by_text("Short of supplies").first).to_be_visible()
    block.get_by_role("link", name=re.compile(r"^TKY")).click()
    page.wait_for_url(re.compile(r".*/stockpile/sites/TKY$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("TKY")
    page.go_back()
    page.get_by_role("link", name="Stockpile by site").click()
    page.wait_for_url(re.compile(r".*/stockpile$"))


def test_print_the_report_of_the_next_drill(live_app: Any, page: Any) -> None:
    center = seed(live_app.app)
    with live_app.app.app_context():
        reports_service.create_drill(
            organization_id=center.org_id,
            type="notification_test",
            scenario="earthquake",
            title="Spring notification test",
            actor="test",
            planned_start_at=utcnow() + timedelta(days=3),
        )
        db.session.commit()
        db.session.remove()
    sign_in(page, live_app.url, center.emails["crisis_manager"])
    page.locator("#block-drills").get_by_role("link", name="Spring notification test").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Spring notification test")
    with page.expect_download() as download_info:
        page.get_by_role("link", name=re.compile(r"Print report \(English PDF\)")).click()
    download = download_info.value
    assert download.suggested_filename.endswith(".pdf")
    path = download.path()
    assert path is not None
    with open(path, "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"
