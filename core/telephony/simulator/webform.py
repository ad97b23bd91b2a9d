"""A simulated person answering a web form: open the link, fill the first POST form, submit it.

Filling rules (what a hurried person on a phone does): hidden inputs are sent as they are (CSRF tokens, answer
tokens); radio groups are answered in order of appearance with the person's answers (the value for the 1st group,
the 2nd group…; a digit that is not one of the values picks the option at that position, as on the phone; a
missing or unknown answer picks the group's first option); checkboxes already checked stay
checked; text fields keep their value; a select keeps its selected (or first) option; the first named submit
button is "clicked".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

from core.telephony.simulator.transport import OutgoingRequest, Transport, TransportError


@dataclass
class Form:
    action: str
    hidden: list[tuple[str, str]] = field(default_factory=list)
    radio_groups: dict[str, list[str]] = field(default_factory=dict)  # insertion order = order on the page
    radio_checked: dict[str, str] = field(default_factory=dict)
    other: list[tuple[str, str]] = field(default_factory=list)
    submit: tuple[str, str] | None = None

    def fill(self, answers: Sequence[str]) -> list[tuple[str, str]]:
        fields = list(self.hidden)
        for index, (name, options) in enumerate(self.radio_groups.items()):
            wanted = answers[index] if index < len(answers) else None
            if wanted is not None and wanted in options:
                fields.append((name, wanted))
            elif wanted is not None and wanted.isdigit() and 1 <= int(wanted) <= len(options):
                fields.append((name, options[int(wanted) - 1]))  # "2" as on the phone: the second option
            elif options:
                fields.append((name, options[0]))
        fields.extend(self.other)
        if self.submit is not None:
            fields.append(self.submit)
        return fields


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.form: Form | None = None
        self._inside = False
        self._done = False
        self._select: str | None = None
        self._select_options: list[tuple[str, bool]] = []
        self._textarea: str | None = None
        self._textarea_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._done:
            return
        a = {k.lower(): (v if v is not None else "") for k, v in attrs}
        if tag == "form" and not self._inside:
            if a.get("method", "get").lower() == "post":
                self.form = Form(action=a.get("action", ""))
                self._inside = True
            return
        if not self._inside or self.form is None:
            return
        if tag == "input":
            self._input(a)
        elif tag == "button":
            kind = a.get("type", "submit").lower()
            if kind == "submit" and "name" in a and self.form.submit is None:
                self.form.submit = (a["name"], a.get("value", ""))
        elif tag == "select" and "name" in a:
            self._select = a["name"]
            self._select_options = []
        elif tag == "option" and self._select is not None:
            self._select_options.append((a.get("value", ""), "selected" in a))
        elif tag == "textarea" and "name" in a:
            self._textarea = a["name"]
            self._textarea_text = []

    def _input(self, a: dict[str, str]) -> None:
        assert self.form is not None
        kind = a.get("type", "text").lower()
        name = a.get("name")
        if not name or "disabled" in a:
            return
        value = a.get("value", "")
        if kind == "hidden":
            self.form.hidden.append((name, value))
        elif kind == "radio":
            self.form.radio_groups.setdefault(name, []).append(value or "on")
            if "checked" in a:
                self.form.radio_checked[name] = value
        elif kind == "checkbox":
            if "checked" in a:
                self.form.other.append((name, value or "on"))
        elif kind in {"submit", "image"}:
            if self.form.submit is None:
                self.form.submit = (name, value)
        elif kind not in {"button", "reset", "file"}:
            self.form.other.append((name, value))

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea_text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self.form is None or self._done:
            return
        if tag == "select" and self._select is not None:
            chosen = next((v for v, sel in self._select_options if sel), None)
            if chosen is None and self._select_options:
                chosen = self._select_options[0][0]
            if chosen is not None:
                self.form.other.append((self._select, chosen))
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.form.other.append((self._textarea, "".join(self._textarea_text)))
            self._textarea = None
        elif tag == "form" and self._inside:
            self._inside = False
            self._done = True


def first_post_form(html: str) -> Form | None:
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.form


@dataclass
class WebVisit:
    """What happened when a person opened a link (kept on the message/mail timeline)."""

    url: str
    opened_status: int | None = None
    submitted_to: str | None = None
    submitted: list[tuple[str, str]] = field(default_factory=list)
    submit_status: int | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "url": self.url,
            "opened_status": self.opened_status,
            "submitted_to": self.submitted_to,
            "submitted": [list(pair) for pair in self.submitted],
            "submit_status": self.submit_status,
            "error": self.error,
        }


BROWSER_HEADERS = {
    "User-Agent": "Mozilla/5.0 (Linux; Android 14) LifelineSimulator/1.0 Mobile",
    "Accept": "text/html,application/xhtml+xml",
    "Accept-Language": "ja,en;q=0.8",
}


def answer_link(
    transport: Transport, url: str, answers: Sequence[str], *, timeout_s: float = 15.0
) -> WebVisit:
    """GET ``url`` like a phone browser, then fill and POST its first POST form (keeping cookies)."""
    visit = WebVisit(url=url)
    try:
        page = transport.send(
            OutgoingRequest("GET", url, headers=BROWSER_HEADERS, timeout_s=timeout_s, follow_redirects=True)
        )
    except TransportError as exc:
        visit.error = str(exc)
        return visit
    visit.opened_status = page.status
    if not page.ok:
        visit.error = f"page answered HTTP {page.status}"
        return visit
    form = first_post_form(page.text)
    if form is None:
        visit.error = "no POST form on the page"
        return visit
    target = urljoin(page.url or url, form.action or "")
    fields = form.fill(answers)
    visit.submitted_to = target
    visit.submitted = fields
    origin = "/".join(target.split("/", 3)[:3])
    try:
        result = transport.send(
            OutgoingRequest(
                "POST",
                target,
                form=fields,
                headers={**BROWSER_HEADERS, "Referer": page.url or url, "Origin": origin},
                cookies=page.cookies,
                timeout_s=timeout_s,
                follow_redirects=True,
            )
        )
    except TransportError as exc:
        visit.error = str(exc)
        return visit
    visit.submit_status = result.status
    if not result.ok:
        visit.error = f"form submission answered HTTP {result.status}"
    return visit
