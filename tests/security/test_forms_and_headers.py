"""Every form carries a CSRF token and a POST without it is refused; every page carries the security headers.

A browser for each role (and one signed in as nobody, holding the personal links staff receive) follows every
link it finds from the home page, the way a user clicking around would, and looks at each page it gets.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest
from flask import Flask
from sqlalchemy import select

from core import db
from tests.security.conftest import PRINCIPALS, Installation, signed_in

MAX_PAGES = 250
PER_SHAPE = 3
SKIP_LINKS = ("/logout", "/static/", "javascript:", "mailto:", "tel:")


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.forms: list[Form] = []
        self.inline: list[str] = []  # what the Content-Security-Policy would block
        self._form: Form | None = None
        self._script_without_src = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "form":
            self._form = Form(action=a.get("action", ""), method=a.get("method", "get").lower())
            self.forms.append(self._form)
        elif tag in ("input", "button", "select", "textarea") and self._form is not None and a.get("name"):
            self._form.fields.setdefault(a["name"], a.get("value", ""))
        elif tag == "script" and not a.get("src"):
            self._script_without_src = True
        if "style" in a:
            self.inline.append(f'<{tag} style="…">')
        self.inline.extend(f"<{tag} {name}=…>" for name in a if name.startswith("on"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "script":
            self._script_without_src = False

    def handle_data(self, data: str) -> None:
        if self._script_without_src and data.strip():
            self.inline.append("<script> without src")


def _start_urls(world: Installation, who: str) -> list[str]:
    from core.directory.models import Staff

    if who != "anonymous":
        return ["/", "/dashboard"]
    person = db.session.get(Staff, world.private_person.id) if world.private_person else None
    urls = ["/login", f"/r/{world.answer_token}", f"/status/{world.org.slug}"]
    if person is not None:
        urls += [f"/me/{person.self_service_token}", f"/home-agent/{person.self_service_token}"]
        urls += [f"/boards/{person.self_service_token}"]
    return urls


@dataclass
class Crawl:
    pages: dict[str, Any] = field(default_factory=dict)  # url → response
    forms: dict[tuple[str, str], str] = field(default_factory=dict)  # (page, action) → method
    csrf_problems: list[str] = field(default_factory=list)
    csp_problems: list[str] = field(default_factory=list)


def crawl(app: Flask, world: Installation, who: str) -> tuple[Any, Crawl]:
    client = signed_in(app, world, who)
    result = Crawl()
    queue = deque(_start_urls(world, who))
    shapes: Counter[str] = Counter()
    while queue and len(result.pages) < MAX_PAGES:
        url = queue.popleft()
        if url in result.pages:
            continue
        response = client.get(url)
        result.pages[url] = response
        if response.status_code in (301, 302, 303) and response.headers.get("Location"):
            location = urlsplit(urljoin(url, response.headers["Location"]))
            if location.netloc in ("", "localhost"):
                queue.append(location.path + (f"?{location.query}" if location.query else ""))
            continue
        if response.mimetype != "text/html":
            continue
        page = _Page()
        page.feed(response.get_data(as_text=True))
        for problem in page.inline:
            result.csp_problems.append(f"{who}: {url} has {problem}, which the page's own CSP blocks")
        for form in page.forms:
            target = urlsplit(urljoin(url, form.action or url)).path
            if form.method == "post":
                result.forms[(url, target)] = "post"
                if not form.fields.get("csrf_token"):
                    result.csrf_problems.append(
                        f"{who}: the form on {url} posting to {target} has no csrf_token"
                    )
        for href in page.links:
            target = urlsplit(urldefrag(urljoin(url, href))[0])
            if target.netloc not in ("", "localhost") or any(s in href for s in SKIP_LINKS):
                continue
            path = target.path + (f"?{target.query}" if target.query else "")
            shape = re.sub(r"/\d+", "/N", target.path)
            if path in result.pages or "lang=" in target.query or shapes[shape] >= PER_SHAPE:
                continue
            shapes[shape] += 1  # a few of each kind of page: /staff/1, /staff/2… look alike
            queue.append(path)
    return client, result


HTML_HEADERS = {
    "X-Content-Type-Options": lambda v: v == "nosniff",
    "X-Frame-Options": lambda v: v == "DENY",
    "Content-Security-Policy": lambda v: "default-src 'self'" in v and "frame-ancestors 'none'" in v,
    "Referrer-Policy": lambda v: v in ("same-origin", "no-referrer", "strict-origin-when-cross-origin"),
}
PRIVATE_LINK_PAGES = ("/r/", "/me/", "/home-agent/", "/boards/")


def _header_problems(who: str, url: str, response: Any) -> list[str]:
    problems = []
    checks = (
        HTML_HEADERS
        if response.mimetype == "text/html"
        else {"X-Content-Type-Options": HTML_HEADERS["X-Content-Type-Options"]}
    )
    for name, ok in checks.items():
        value = response.headers.get(name, "")
        if not ok(value):
            problems.append(f"{who}: {url} ({response.status_code}) has {name}: {value!r}")
    if url.startswith(PRIVATE_LINK_PAGES) and response.status_code == 200:
        if "no-store" not in response.headers.get("Cache-Control", ""):
            problems.append(f"{who}: {url} is a personal link page that may be cached (Cache-Control)")
        if response.headers.get("Referrer-Policy") != "no-referrer":
            problems.append(f"{who}: {url} is a personal link page that leaks itself as a referrer")
    return problems


@pytest.mark.slow
@pytest.mark.parametrize("who", PRINCIPALS)
def test_every_form_has_a_csrf_token_and_is_refused_without_it(
    app: Flask, installation: Installation, who: str
) -> None:
    client, result = crawl(app, installation, who)
    assert len(result.pages) >= (4 if who == "anonymous" else 10), sorted(result.pages)
    problems = list(result.csrf_problems)
    for page_url, target in sorted(result.forms):
        if page_url.startswith("/login") and target == "/login":
            pass  # checked like the others: signing in without the token must fail too
        refused = client.post(target, data={"ignored": "1"})
        if refused.status_code != 400:
            problems.append(
                f"{who}: POST {target} (form on {page_url}) without a CSRF token got {refused.status_code}"
            )
    assert not problems, "\n".join(problems)


@pytest.mark.slow
@pytest.mark.parametrize("who", PRINCIPALS)
def test_every_page_carries_the_security_headers(app: Flask, installation: Installation, who: str) -> None:
    _, result = crawl(app, installation, who)
    problems = [p for url, response in result.pages.items() for p in _header_problems(who, url, response)]
    problems += result.csp_problems
    assert not problems, "\n".join(problems)


def test_error_pages_carry_the_security_headers_too(client: Any) -> None:
    for response in (client.get("/no-such-page"), client.post("/login", data={})):
        assert response.status_code in (400, 404)
        assert not _header_problems("anonymous", "/error", response)


__all__ = ["select"]
