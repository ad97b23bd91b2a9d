"""How the simulator reaches the outside world (the application's webhooks, answer pages) — and how a test can
reach the simulator without a socket.

* :class:`RequestsTransport` — real HTTP with :mod:`requests` (the default).
* :class:`WsgiTransport` — calls a WSGI app (e.g. the Lifeline Flask app) in-process through its test client.
* :class:`InProcessTwilioHttpClient` — a ``twilio`` SDK HTTP client that sends the official client's requests to the
  simulator app in-process, so ``twilio.rest.Client`` can be tested without a server.

Cookies are never shared between simulated people: each request carries the caller's own cookies and returns the
ones the server set, and the transports keep none.
"""

from __future__ import annotations

import http.cookiejar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import requests
from flask import Flask
from twilio.http import HttpClient
from twilio.http.response import Response as TwilioResponse


@dataclass(frozen=True)
class OutgoingRequest:
    method: str
    url: str
    form: Sequence[tuple[str, str]] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float = 15.0
    follow_redirects: bool = False


@dataclass(frozen=True)
class IncomingResponse:
    status: int
    text: str
    content_type: str
    url: str
    cookies: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class TransportError(Exception):
    """The request never got an HTTP answer (refused, timed out, DNS…)."""


class Transport(Protocol):
    def send(self, request: OutgoingRequest) -> IncomingResponse: ...


class _RejectAllCookies(http.cookiejar.DefaultCookiePolicy):
    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


class RequestsTransport:
    def __init__(self, session: requests.Session | None = None) -> None:
        self.session = session or requests.Session()
        # The session is shared by every simulated person; cookies travel per request instead.
        self.session.cookies.set_policy(_RejectAllCookies())

    def send(self, request: OutgoingRequest) -> IncomingResponse:
        try:
            response = self.session.request(
                request.method,
                request.url,
                data=list(request.form) if request.form is not None else None,
                headers=dict(request.headers),
                cookies=dict(request.cookies),
                timeout=request.timeout_s,
                allow_redirects=request.follow_redirects,
            )
        except requests.RequestException as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        cookies = {c.name: c.value or "" for c in response.cookies}
        for hop in response.history:
            for c in hop.cookies:
                cookies.setdefault(c.name, c.value or "")
        return IncomingResponse(
            status=response.status_code,
            text=response.text,
            content_type=response.headers.get("Content-Type", ""),
            url=response.url,
            cookies=cookies,
        )


class WsgiTransport:
    """Sends requests to a Flask app in-process (no socket), e.g. ``WsgiTransport(create_app(settings))``."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def send(self, request: OutgoingRequest) -> IncomingResponse:
        client = self.app.test_client(use_cookies=False)
        headers = dict(request.headers)
        if request.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in request.cookies.items())
        parts = urlsplit(request.url)
        base_url = f"{parts.scheme}://{parts.netloc}"
        path = parts.path or "/"
        try:
            response = client.open(
                path,
                base_url=base_url,
                method=request.method,
                query_string=parts.query,
                data=urlencode(list(request.form)) if request.form is not None else None,
                headers=headers,
                content_type="application/x-www-form-urlencoded" if request.form is not None else None,
                follow_redirects=request.follow_redirects,
            )
        except Exception as exc:  # the app crashed in-process: to the caller that is "no answer"
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc
        cookies: dict[str, str] = {}
        for header in response.headers.getlist("Set-Cookie"):
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            cookies.update({name: morsel.value for name, morsel in jar.items()})
        final_url = request.url
        if response.request is not None:
            final_url = response.request.url
        return IncomingResponse(
            status=response.status_code,
            text=response.get_data(as_text=True),
            content_type=response.headers.get("Content-Type", ""),
            url=final_url,
            cookies=cookies,
        )


def make_transport(http: Transport | requests.Session | Flask | None) -> Transport:
    if http is None:
        return RequestsTransport()
    if isinstance(http, requests.Session):
        return RequestsTransport(http)
    if isinstance(http, Flask):
        return WsgiTransport(http)
    return http


class InProcessTwilioHttpClient(HttpClient):
    """A ``twilio`` HTTP client that hands each request to a (simulator) Flask app instead of the network.

    ``Client(sid, token, http_client=InProcessTwilioHttpClient(simulator_app))`` behaves as if pointed at a
    running simulator: same form encoding, headers and Basic auth as :class:`twilio.http.http_client.TwilioHttpClient`.
    """

    def __init__(self, app: Flask) -> None:
        import logging

        super().__init__(logging.getLogger("twilio.http_client"), False, None)
        self.app = app

    def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        prepared = requests.Request(
            method=method.upper(), url=uri, params=params, data=data, headers=headers, auth=auth
        ).prepare()
        parts = urlsplit(prepared.url or uri)
        client = self.app.test_client(use_cookies=False)
        body = prepared.body
        response = client.open(
            parts.path,
            base_url=f"{parts.scheme}://{parts.netloc}",
            method=method.upper(),
            query_string=parts.query,
            data=body.encode() if isinstance(body, str) else body,
            headers=dict(prepared.headers),
        )
        result = TwilioResponse(response.status_code, response.get_data(as_text=True), dict(response.headers))
        self._test_only_last_response = result
        return result
