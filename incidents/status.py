"""The public status page: one row per organization, read by slug, cached for a few seconds in each process.

During an incident this page is what every customer refreshes while the phone lines are busy, so reading it costs
one indexed row (no join), and a process answers repeated requests from memory for :data:`CACHE_SECONDS`.
Editing is scoped: an organization-wide crisis manager or supervisor changes everything; one limited to some sites
changes only the entries of those sites.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from core import db
from core.auth.models import Role
from core.auth.service import Principal, audit
from core.db import after_commit
from core.directory.models import Organization, Site
from core.errors import Forbidden, ValidationError
from core.time import utcnow
from incidents.models import ServiceState, StatusPage

EDIT_ROLES = (Role.CRISIS_MANAGER, Role.SUPERVISOR)
CACHE_SECONDS = 5.0
MAX_ENTRIES = 40
DEFAULT_ANNOUNCEMENT_JA = "通常営業中"
DEFAULT_ANNOUNCEMENT_EN = "We are open as usual."
STATE_TEXT = {
    ServiceState.NORMAL: "Operating normally",
    ServiceState.DEGRADED: "Degraded",
    ServiceState.OUTAGE: "Outage",
}


@dataclass(frozen=True)
class Entry:
    key: str
    label_ja: str
    label_en: str
    state: ServiceState
    site_id: int | None = None

    def label(self, language: str) -> str:
        return self.label_en if language == "en" and self.label_en else self.label_ja

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label_ja": self.label_ja,
            "label_en": self.label_en,
            "state": self.state.value,
            "site_id": self.site_id,
        }


@dataclass(frozen=True)
class Snapshot:
    """What the public page shows: plain values, safe to keep in memory and share between requests."""

    slug: str
    title: str
    announcement_ja: str
    announcement_en: str
    entries: tuple[Entry, ...]
    updated_at: datetime
    version: int

    @property
    def overall(self) -> ServiceState:
        return max((e.state for e in self.entries), key=lambda s: s.rank, default=ServiceState.NORMAL)

    @property
    def etag(self) -> str:
        return f"{self.slug}-{self.version}"

    def as_json(self) -> dict[str, Any]:
        return {
            "organization": self.title,
            "slug": self.slug,
            "overall": self.overall.value,
            "announcement": {"ja": self.announcement_ja, "en": self.announcement_en},
            "services": [
                {
                    "key": e.key,
                    "name": {"ja": e.label_ja, "en": e.label_en or e.label_ja},
                    "state": e.state.value,
                }
                for e in self.entries
            ],
            "updated_at": self.updated_at.isoformat(),
        }


def _entries(raw: Sequence[dict[str, Any]] | None) -> tuple[Entry, ...]:
    out = []
    for item in raw or []:
        try:
            state = ServiceState(item.get("state", "normal"))
        except ValueError:
            state = ServiceState.OUTAGE  # an unreadable state is never shown as "normal"
        out.append(
            Entry(
                key=str(item.get("key", "")),
                label_ja=str(item.get("label_ja", "")),
                label_en=str(item.get("label_en", "")),
                state=state,
                site_id=item.get("site_id"),
            )
        )
    return tuple(out)


def snapshot_of(page: StatusPage) -> Snapshot:
    return Snapshot(
        slug=page.slug,
        title=page.title,
        announcement_ja=page.announcement_ja,
        announcement_en=page.announcement_en,
        entries=_entries(page.entries),
        updated_at=page.updated_at,
        version=page.version,
    )


_cache: dict[str, tuple[float, Snapshot | None]] = {}
_cache_lock = threading.Lock()


def forget(slug: str) -> None:
    with _cache_lock:
        _cache.pop(slug, None)


def public_snapshot(slug: str, *, clock: Any = time.monotonic) -> Snapshot | None:
    """The page of ``slug`` (None when there is none), at most :data:`CACHE_SECONDS` old."""
    now = clock()
    with _cache_lock:
        hit = _cache.get(slug)
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        return hit[1]
    page = db.session.scalar(select(StatusPage).where(StatusPage.slug == slug))
    snap = snapshot_of(page) if page is not None else _unpublished(slug)
    with _cache_lock:
        if len(_cache) > 1000:  # slugs come from the URL: never let made-up ones grow the cache without bound
            _cache.clear()
        _cache[slug] = (now, snap)
    return snap


def _unpublished(slug: str) -> Snapshot | None:
    """An organization that never edited its page still has one (the routing part sends callers its link)."""
    org = db.session.scalar(select(Organization).where(Organization.slug == slug))
    if org is None:
        return None
    return Snapshot(
        slug=org.slug,
        title=org.name,
        announcement_ja=DEFAULT_ANNOUNCEMENT_JA,
        announcement_en=DEFAULT_ANNOUNCEMENT_EN,
        entries=(),
        updated_at=org.created_at,
        version=0,
    )


def _key(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:30] or "service"
    key, n = base, 2
    while key in taken:
        key, n = f"{base}-{n}", n + 1
    return key


def ensure_status_page(*, organization_id: int, now: datetime | None = None) -> StatusPage:
    """The organization's page, created on first use with one "normal" entry per site and "通常営業中"."""
    page = db.session.scalar(select(StatusPage).where(StatusPage.organization_id == organization_id))
    org = db.session.get(Organization, organization_id)
    if org is None:
        raise ValidationError("unknown organization")
    if page is not None:
        if (page.slug, page.title) != (org.slug, org.name):
            # The organization was renamed: the public address follows it.
            forget(page.slug)
            page.slug, page.title = org.slug, org.name
            page.version += 1
            db.session.flush()
        return page
    sites = db.session.scalars(
        select(Site).where(Site.organization_id == organization_id).order_by(Site.code)
    )
    taken: set[str] = set()
    entries = []
    for site in sites:
        key = _key(site.code, taken)
        taken.add(key)
        entries.append(
            Entry(
                key=key, label_ja=site.name, label_en=site.name_en, state=ServiceState.NORMAL, site_id=site.id
            )
        )
    page = StatusPage(
        organization_id=org.id,
        slug=org.slug,
        title=org.name,
        announcement_ja=DEFAULT_ANNOUNCEMENT_JA,
        announcement_en=DEFAULT_ANNOUNCEMENT_EN,
        entries=[e.as_dict() for e in entries],
        updated_at=now or utcnow(),
        updated_by="system",
        version=1,
    )
    db.session.add(page)
    db.session.flush()
    return page


@dataclass(frozen=True)
class EntryChange:
    """One line of the edit form: an existing entry (by key) or a new one (key ""), or a removal."""

    key: str
    label_ja: str
    label_en: str
    state: str
    site_id: int | None = None
    remove: bool = False


def can_edit_everything(principal: Principal) -> bool:
    return principal.has(*EDIT_ROLES) and principal.scope_ids(*EDIT_ROLES) is None


def editable_site_ids(principal: Principal) -> frozenset[int] | None:
    """None: every entry; otherwise the sites whose entries this user may change."""
    scope = principal.scope_ids(*EDIT_ROLES)
    return None if scope is None else scope[0]


def update_status_page(
    *,
    principal: Principal,
    changes: Sequence[EntryChange],
    announcement_ja: str | None,
    announcement_en: str | None,
    actor: str,
    now: datetime | None = None,
    ip: str | None = None,
) -> StatusPage:
    """Apply the edit form. A user limited to some sites may only change the state of those sites' entries."""
    now = now or utcnow()
    if not principal.has(*EDIT_ROLES):
        raise Forbidden("You may not edit the status page.")
    page = ensure_status_page(organization_id=principal.organization_id, now=now)
    limited = editable_site_ids(principal)
    current = {e.key: e for e in _entries(page.entries)}
    result: list[Entry] = []
    log: list[str] = []
    seen: set[str] = set()
    for change in changes:
        old = current.get(change.key) if change.key else None
        try:
            state = ServiceState(change.state)
        except ValueError:
            raise ValidationError("unknown state", field="state") from None
        if old is None:
            if not (change.label_ja.strip() or change.label_en.strip()):
                continue  # the empty "add" line of the form
            if limited is not None:
                raise Forbidden("Only organization-wide users can add entries.")
            key = _key(change.label_en or change.label_ja, set(current) | seen)
            new = Entry(
                key=key,
                label_ja=(change.label_ja.strip() or change.label_en.strip())[:100],
                label_en=change.label_en.strip()[:100],
                state=state,
                site_id=change.site_id,
            )
            log.append(f"+{new.label_ja}={state.value}")
            seen.add(key)
            result.append(new)
            continue
        seen.add(old.key)
        allowed = limited is None or (old.site_id is not None and old.site_id in limited)
        if change.remove:
            if limited is not None:
                raise Forbidden("Only organization-wide users can remove entries.")
            log.append(f"-{old.label_ja}")
            continue
        new = Entry(
            key=old.key,
            label_ja=(change.label_ja.strip() or old.label_ja)[:100] if limited is None else old.label_ja,
            label_en=change.label_en.strip()[:100] if limited is None else old.label_en,
            state=state,
            site_id=old.site_id,
        )
        if new != old and not allowed:
            raise Forbidden("You may only change the entries of your own sites.")
        if new.state is not old.state:
            log.append(f"{old.label_ja}: {old.state.value}→{new.state.value}")
        elif new != old:
            log.append(f"{old.label_ja}: renamed")
        result.append(new)
    # Entries the form did not mention (another user added them meanwhile) are kept as they are.
    result.extend(e for key, e in current.items() if key not in seen)
    if len(result) > MAX_ENTRIES:
        raise ValidationError("At most 40 services.", field="entries")
    texts: dict[str, str] = {}
    for name, value in (("announcement_ja", announcement_ja), ("announcement_en", announcement_en)):
        if value is None or value.strip() == getattr(page, name):
            continue
        if limited is not None:
            raise Forbidden("Only organization-wide users can change the announcement.")
        texts[name] = value.strip()[:2000]
        log.append(f"{name} changed")
    if not log:
        return page
    for name, value in texts.items():
        setattr(page, name, value)
    page.entries = [e.as_dict() for e in result]
    page.updated_at = now
    page.updated_by = actor
    page.version = page.version + 1
    db.session.flush()
    audit(
        action="incidents.status_page.update",
        organization_id=principal.organization_id,
        actor=actor,
        actor_user_id=principal.user_id,
        target_type="status_page",
        target_id=page.slug,
        summary="status page: " + "; ".join(log),
        detail={"changes": log, "version": page.version},
        ip=ip,
    )
    slug = page.slug
    forget(slug)
    after_commit(lambda: forget(slug))
    return page


def status_page_of(*, organization_id: int) -> StatusPage | None:
    return db.session.scalar(select(StatusPage).where(StatusPage.organization_id == organization_id))
