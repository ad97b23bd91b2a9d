from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from core.directory.models import Organization, Site
from tests.factories import make_org, make_site, make_staff

TODAY = date(2026, 4, 1)


@dataclass
class TwoSites:
    org: Organization
    tky: Site
    osa: Site


@pytest.fixture()
def two_sites(db_session: Any) -> TwoSites:
    """An organization with Tokyo (100 staff) and Osaka (20 staff)."""
    org = make_org()
    tky = make_site(org, code="TKY", name="東京本社")
    osa = make_site(org, code="OSA", name="大阪センター", prefecture="27")
    add_staff(org, tky, 100)
    add_staff(org, osa, 20)
    return TwoSites(org, tky, osa)


def add_staff(org: Organization, site: Site, count: int) -> None:
    for _ in range(count):
        make_staff(org, site=site)
