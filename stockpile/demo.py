"""The demo-data hook for the stockpile: the item catalogue and a few lots per demo site, chosen so the demo
shows every state a facilities team meets — a site that is fine, one with stock expiring soon and too much in
one storeroom, and one that is short and holds an expired lot. Dates are relative to today."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select

from core import db
from core.config import Settings
from core.directory.models import Organization, Site
from stockpile import service
from stockpile.models import StockLot

ACTOR = "demo-data"

# site code → (item, quantity, location, days until expiry or None, note)
DEMO_LOTS: dict[str, list[tuple[str, str, str, int | None, str]]] = {
    "TKY": [
        ("water", "800", "B1 備蓄倉庫", 4 * 365, "2 L × 400 本"),
        ("water", "200", "3F 休憩室", 2 * 365, "2 L × 100 本"),
        ("food", "600", "B1 備蓄倉庫", 120, "アルファ米 (入替時期)"),
        ("food", "500", "B1 備蓄倉庫", 3 * 365, "保存パン"),
        ("toilet", "1200", "B1 備蓄倉庫", None, ""),
        ("blanket", "120", "B1 備蓄倉庫", None, "アルミ保温シート含む"),
    ],
    "OSA": [
        ("water", "600", "1F 倉庫", 5 * 365, ""),
        ("water", "500", "4F 倉庫", 3 * 365, ""),
        ("food", "600", "1F 倉庫", 4 * 365, ""),
        ("food", "500", "4F 倉庫", 2 * 365, ""),
        ("toilet", "1000", "1F 倉庫", None, ""),
        ("toilet", "900", "4F 倉庫", None, ""),
        ("blanket", "70", "1F 倉庫", None, ""),
        ("blanket", "60", "4F 倉庫", None, ""),
    ],
    "FUK": [
        ("water", "300", "2F 倉庫", 3 * 365, ""),
        ("food", "200", "2F 倉庫", -30, "期限切れ: 廃棄予定"),
        ("food", "150", "2F 倉庫", 200, ""),
        ("toilet", "500", "2F 倉庫", None, ""),
        ("blanket", "50", "2F 倉庫", None, ""),
    ],
}


def seed_demo(org: Organization, *, settings: Settings) -> list[str]:
    service.ensure_catalogue(organization_id=org.id)
    today = date.today()
    added = 0
    for code, lots in DEMO_LOTS.items():
        site = db.session.scalar(select(Site).where(Site.organization_id == org.id, Site.code == code))
        if site is None:
            continue
        if db.session.scalar(select(func.count()).select_from(StockLot).where(StockLot.site_id == site.id)):
            continue  # the site already has inventory: never touch what facilities entered
        for item, quantity, location, days, note in lots:
            service.add_lot(
                site=site,
                item_key=item,
                quantity=quantity,
                location=location,
                expires_on=None if days is None else today + timedelta(days=days),
                note=note,
                actor=ACTOR,
            )
            added += 1
    return [f"stockpile: {added} inventory lots"] if added else []
