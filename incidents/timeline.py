"""An incident's timeline: its own events and what the rest of Lifeline audited meanwhile, in one list. Pure.

Per-person records (each answer to a safety call, each sign-in) would bury the decisions under hundreds of lines,
so they are folded into one line per action and quarter of an hour ("37 × ivr.answer").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

# Never part of an incident's story.
IGNORED_ACTIONS = frozenset({"login", "login.failed", "logout"})
# Many per minute in a real incident: counted, not listed.
FOLDED_ACTIONS = frozenset(
    {
        "ivr.answer",
        "ivr.answer.change",
        "ivr.invitation.accept",
        "ivr.invitation.decline",
        "contact.add",
        "contact.remove",
        "contact.confirm",
        "incidents.board.post",
        "incidents.group.message",
    }
)
FOLD_WINDOW = timedelta(minutes=15)


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    source: str  # "incident" (the incident's own events) or "audit" (everything else)
    kind: str  # the event kind or the audit action, e.g. "step", "ivr.broadcast.start"
    actor: str
    text: str
    part: str = ""  # which part of Lifeline it came from: incident, ivr, continuity, directory…
    count: int = 1  # more than 1 for a folded line
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "source": self.source,
            "kind": self.kind,
            "actor": self.actor,
            "text": self.text,
            "part": self.part,
            "count": self.count,
        }


def part_of(action: str) -> str:
    head = action.split(".", 1)[0]
    return {
        "ivr": "ivr",
        "jma": "ivr",
        "continuity": "continuity",
        "route": "continuity",
        "site": "continuity",
        "stockpile": "stockpile",
        "incidents": "incidents",
        "incident": "incidents",
        "reports": "reports",
        "user": "admin",
        "api_token": "admin",
        "staff": "directory",
        "contact": "directory",
        "import": "directory",
    }.get(head, head)


def fold(entries: Iterable[TimelineEntry], *, window: timedelta = FOLD_WINDOW) -> list[TimelineEntry]:
    """Merge folded actions into one line per action and window (at the first one's time), keep the rest."""
    out: list[TimelineEntry] = []
    open_folds: dict[str, int] = {}  # action → index in out of its current folded line
    for entry in sorted(entries, key=lambda e: e.at):
        if entry.source != "audit" or entry.kind not in FOLDED_ACTIONS:
            out.append(entry)
            continue
        index = open_folds.get(entry.kind)
        if index is not None and entry.at - out[index].at < window:
            first = out[index]
            count = first.count + entry.count
            out[index] = TimelineEntry(
                at=first.at,
                source="audit",
                kind=first.kind,
                actor="",
                text=f"{count} × {first.kind}",
                part=first.part,
                count=count,
            )
            continue
        open_folds[entry.kind] = len(out)
        out.append(entry)
    return out


def merge(events: Iterable[TimelineEntry], audit: Iterable[TimelineEntry]) -> list[TimelineEntry]:
    """Events and audit entries in time order (an event first when both happened at the same instant)."""
    kept = [e for e in audit if e.kind not in IGNORED_ACTIONS]
    combined = [*events, *fold(kept)]
    return sorted(combined, key=lambda e: (e.at, 0 if e.source == "incident" else 1))
