"""The demo-data hook for safety broadcasts: the built-in templates and the JMA trigger rules."""

from __future__ import annotations

from core.config import Settings
from core.directory.models import Organization
from ivr import service
from ivr.jma.service import seed_demo_rules


def seed_demo(org: Organization, *, settings: Settings) -> list[str]:
    added = service.ensure_templates(organization_id=org.id)
    seed_demo_rules(org)
    return [f"safety broadcasts: {added} templates added, JMA rules ready"] if added else []
