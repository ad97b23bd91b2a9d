"""Browser tests: Playwright driving Debian's Chromium against the live app on a loopback port.

* Skipped, with the reason, when Chromium is not installed (``apt-get install chromium``; Playwright's own browser
  download is not used). ``LIFELINE_CHROMIUM`` names another executable.
* ``page`` is a desktop-sized tab, ``phone`` a 375 px wide one; each test gets a fresh browser context (no cookies
  carried over). When a test fails, a screenshot of every open tab goes to ``test-artifacts/`` (gitignored).
* Data is written with real commits (``live_app`` empties the tables afterwards): see :func:`seed`.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from continuity import service as continuity_service
from core import db
from core.auth.models import Role
from tests.factories import PASSWORD, make_department, make_org, make_site, make_staff, make_user

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("LIFELINE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}
ROLES = ("admin", "crisis_manager", "manager", "supervisor", "facilities")
LINE = "+15550100190"
PLAN: dict[str, Any] = {
    "site": "TKY",
    "targets": [
        {"kind": "site_agents", "site": "TKY", "ring_timeout_s": 15},
        {"kind": "site", "site": "OSA", "ring_timeout_s": 15},
        {"kind": "voicemail"},
    ],
}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"Chromium is not installed at {CHROMIUM} (apt-get install chromium); browser tests skipped"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Tabs:
    """Opens browser contexts for one test and photographs them if the test fails."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser
        self.contexts: list[Any] = []

    def open(self, viewport: dict[str, int] = DESKTOP, **options: Any) -> Any:
        options.setdefault("locale", "en-US")
        context = self.browser.new_context(viewport=viewport, accept_downloads=True, **options)
        context.set_default_timeout(15_000)
        self.contexts.append(context)
        return context.new_page()

    def close(self, name: str, failed: bool) -> None:
        for n, context in enumerate(self.contexts):
            if failed:
                ARTIFACTS.mkdir(exist_ok=True)
                safe = re.sub(r"[^\w.-]+", "_", name)
                for m, tab in enumerate(context.pages):
                    try:
                        tab.screenshot(path=str(ARTIFACTS / f"{safe}-{n}-{m}.png"), full_page=True)
                    except Exception as exc:  # a crashed tab must not hide the test's own failure
                        warnings.warn(f"no screenshot of {safe} tab {n}-{m}: {exc}", stacklevel=1)
            context.close()


@pytest.fixture()
def tabs(chromium: Any, request: pytest.FixtureRequest) -> Iterator[Tabs]:
    opened = Tabs(chromium)
    try:
        yield opened
    finally:
        report = getattr(request.node, "report_call", None)
        opened.close(request.node.name, failed=report is None or report.failed)


@pytest.fixture()
def page(tabs: Tabs) -> Any:
    return tabs.open(DESKTOP)


@pytest.fixture()
def phone(tabs: Tabs) -> Any:
    return tabs.open(PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)


@dataclass
class Center:
    """What :func:`seed` wrote (ids and e-mails only: the ORM objects belong to a closed session)."""

    org_id: int
    sites: dict[str, int]
    staff: list[int]
    emails: dict[str, str] = field(default_factory=dict)
    line_id: int = 0


def seed(app: Any, *, people: int = 6, phone: Callable[[int], str] | None = None) -> Center:
    """Two sites (TKY Tokyo, OSA Osaka) with people, a customer line that rings Tokyo then Osaka, and one user
    per role (e-mail ``<role>@example.com``, the factories' password). Committed: the live server sees it."""
    with app.app_context():
        org = make_org(name="Browser Test")
        tky = make_site(org, code="TKY", prefecture="13", name="東京センター", name_en="Tokyo center")
        osa = make_site(org, code="OSA", prefecture="27", name="大阪センター", name_en="Osaka center")
        departments = [make_department(org, "Sales"), make_department(org, "Support")]
        staff = [
            make_staff(
                org,
                site=tky if n < people // 2 else osa,
                department=departments[n % 2],
                phone=phone(n) if phone else f"+8190000005{n:02d}",
                email=f"browser{n}@example.com",
                name=f"Person {n}",
            )
            for n in range(people)
        ]
        emails = {}
        for role in ROLES:
            user = make_user(org, Role(role), email=f"{role}@example.com", language="en")
            emails[role] = user.email
        for n, site in enumerate((tky, osa)):
            continuity_service.add_agent(
                site=site, name=f"{site.code} 1", endpoint=f"client:browser-{n}", actor="test"
            )
        plan = continuity_service.save_plan(
            organization_id=org.id, name="support", definition=PLAN, actor="test"
        )
        line = continuity_service.add_line(
            organization_id=org.id, number=LINE, name="Support line", plan=plan, actor="test"
        )
        center = Center(
            org_id=org.id,
            sites={"TKY": tky.id, "OSA": osa.id},
            staff=[s.id for s in staff],
            emails=emails,
            line_id=line.id,
        )
        db.session.commit()
        db.session.remove()
    return center


def sign_in(page: Any, base_url: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/login")
    # By field name: the sign-in page follows the browser's language.
    page.locator('input[name="email"]').fill(email)
    page.locator('input[name="password"]').fill(password)
    page.locator('main form button[type="submit"]').click()
    page.wait_for_url(re.compile(r".*/dashboard$"))
