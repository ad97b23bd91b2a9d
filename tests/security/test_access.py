"""Who may open what: every route of the application (read from ``app.url_map``, so none can be forgotten) with
every role, a user limited to one site, and nobody signed in.

``EXPECTED`` is the table of what each endpoint allows. A new endpoint that is not in it fails the test: decide who
may use it and add a line. Object ids in the URLs do not exist (999999), so the check is about the door, not the
room: an allowed principal gets past the role check (and then a 404, a form error…), a refused one gets 403, and
someone not signed in is sent to the sign-in page. Whether a scoped user sees an object outside the scope is
tested where the objects are (``test_scope.py`` and each part's own tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient
from werkzeug.routing.converters import IntegerConverter

from tests.factories import csrf_from
from tests.security.conftest import PRINCIPALS, Installation, signed_in

SCOPED_ROLES = frozenset({"crisis_manager", "manager", "supervisor", "facilities"})  # see conftest


@dataclass(frozen=True)
class Access:
    """``kind``: public, login, roles, org_wide, signed (Twilio), api (Bearer token), login_json, logout."""

    kind: str
    roles: frozenset[str] = frozenset()

    def allows(self, who: str) -> bool:
        if self.kind == "public":
            return True
        if who == "anonymous" or self.kind in ("signed", "api"):
            return False
        if self.kind in ("login", "login_json", "logout"):
            return True
        if who == "admin":
            return True  # an organization-wide admin holds every role
        if who == "scoped":
            return self.kind == "roles" and bool(self.roles & SCOPED_ROLES)
        return who in self.roles


PUBLIC = Access("public")
LOGIN = Access("login")
SIGNED = Access("signed")
API = Access("api")


def roles(*names: str) -> Access:
    """Those roles (and admins); a scoped user holding one of them too."""
    return Access("roles", frozenset(names))


def org_wide(*names: str) -> Access:
    """Those roles (and admins), organization-wide only: the site-scoped user is refused."""
    return Access("org_wide", frozenset(names))


ADMIN = roles()
CM, MGR, SUP, FAC = "crisis_manager", "manager", "supervisor", "facilities"
EVERY_ROLE = roles(CM, MGR, SUP, FAC)

# "endpoint" applies to every method; "endpoint POST" overrides it for one method.
EXPECTED: dict[str, Access] = {
    # the kernel
    "static": PUBLIC,
    "healthz": PUBLIC,  # load balancers and DNS failover ask it
    "auth.home": LOGIN,
    "auth.login": PUBLIC,
    "auth.logout": Access("logout"),
    "auth.users": ADMIN,
    "auth.create_user": ADMIN,
    "auth.set_roles": ADMIN,
    "auth.audit_log": ADMIN,
    "auth.api_tokens": ADMIN,
    "api.openapi_document": PUBLIC,
    "api.list_staff": API,
    "api.upsert_staff": API,
    # the directory
    "directory.staff_list": roles(CM, MGR),
    "directory.staff_detail": roles(CM, MGR),
    "directory.staff_new": ADMIN,
    "directory.staff_edit": ADMIN,
    "directory.export_csv": ADMIN,
    "directory.import_upload": ADMIN,
    "directory.import_preview": ADMIN,
    "directory.import_apply": ADMIN,
    "directory.self_service_card": ADMIN,
    "directory.self_service_qr": ADMIN,
    "directory.regenerate_self_service_link": ADMIN,
    "directory.self_service": PUBLIC,  # the personal link is the key
    "directory.self_service_add": PUBLIC,
    "directory.self_service_remove": PUBLIC,
    "directory.self_service_confirm": PUBLIC,
    # safety broadcasts
    "ivr.static": PUBLIC,
    "ivr.answer": PUBLIC,
    "ivr.invitation": PUBLIC,
    "ivr.broadcast_list": roles(CM, MGR),
    "ivr.broadcast_watch": roles(CM, MGR),
    "ivr.broadcast_status_json": roles(CM, MGR),
    "ivr.broadcast_export": roles(CM, MGR),
    "ivr.broadcast_new": roles(CM),
    "ivr.broadcast_close": roles(CM),
    "ivr.broadcast_resend": roles(CM),
    "ivr.broadcast_message": roles(CM),
    "ivr.template_list": roles(CM),
    "ivr.template_list POST": org_wide(CM),  # templates are the whole organization's
    "ivr_api.create_broadcast": API,
    "ivr_api.show_broadcast": API,
    "ivr_hooks.voice_start": SIGNED,
    "ivr_hooks.voice_ask": SIGNED,
    "ivr_hooks.voice_pressed": SIGNED,
    "ivr_hooks.voice_confirm": SIGNED,
    "ivr_hooks.voice_recorded": SIGNED,
    "ivr_hooks.voice_goodbye": SIGNED,
    "ivr_hooks.voice_status": SIGNED,
    "ivr_hooks.sms_status": SIGNED,
    "ivr_hooks.sms_inbound": SIGNED,
    # the JMA trigger
    "jma.static": PUBLIC,
    "jma.index": roles(CM, MGR),
    "jma.bulletin": roles(CM, MGR),
    "jma.save_rules": org_wide(CM),
    "jma.reset_rules": org_wide(CM),
    "jma.cancel": org_wide(CM),
    "jma.send_now": org_wide(CM),
    # routing and failover
    "continuity.board": roles(SUP, CM),
    "continuity.explain": roles(SUP, CM),
    "continuity.agent_availability": roles(SUP),
    "continuity.end_emergency": roles(SUP),
    "continuity.handled": roles(SUP),
    "continuity.heartbeat_settings": roles(SUP),
    "continuity.move_line": roles(SUP),
    "continuity.reset_line": roles(SUP),
    "continuity.set_site_state": roles(SUP),
    "continuity.site_token": roles(SUP),
    "continuity.split_line": roles(SUP),
    "continuity.start_emergency": roles(SUP),
    "continuity.undo": roles(SUP),
    "continuity_api.heartbeat": API,  # a site's own token
    "continuity_hooks.inbound": SIGNED,
    "continuity_hooks.next_target": SIGNED,
    "continuity_hooks.queue_wait": SIGNED,
    "continuity_hooks.status": SIGNED,
    "continuity_hooks.faq": SIGNED,
    "continuity_hooks.voicemail": SIGNED,
    "continuity_hooks.callback": SIGNED,
    "continuity_hooks.sms_link": SIGNED,
    "continuity_hooks.agent_pin": SIGNED,
    "continuity_hooks.agent_set": SIGNED,
    "home_agent.home_agent": PUBLIC,  # the personal link is the key
    "home_agent.home_agent_post": PUBLIC,
    "home_agent.join": PUBLIC,
    # stockpile
    "stockpile.static": PUBLIC,
    "stockpile.overview": roles(FAC, CM),
    "stockpile.site_detail": roles(FAC, CM),
    "stockpile.site_status_json": roles(FAC, CM),
    "stockpile.purchase_list_csv": roles(FAC, CM),
    "stockpile.purchase_list_pdf": roles(FAC, CM),
    "stockpile.catalogue": roles(FAC, CM),
    "stockpile.catalogue POST": org_wide(FAC),  # the catalogue is the whole organization's
    "stockpile.update_item": org_wide(FAC),
    "stockpile.add_lot": roles(FAC),
    "stockpile.edit_lot": roles(FAC),
    "stockpile.delete_lot": roles(FAC),
    "stockpile.update_settings": roles(FAC),
    "stockpile.import_lots": roles(FAC),
    # incidents
    "incidents.static": PUBLIC,
    "incidents.index": roles(CM, SUP, MGR),
    "incidents.declare": roles(CM),
    "incidents.detail": roles(CM, SUP, MGR),
    "incidents.timeline": roles(CM, SUP, MGR),
    "incidents.confirm": roles(CM),
    "incidents.dismiss": roles(CM),
    "incidents.close": roles(CM),
    "incidents.change": roles(CM, SUP, MGR),
    "incidents.decide": roles(CM, SUP, MGR),
    "incidents.assign": roles(CM, SUP, MGR),
    "incidents.remove_member": roles(CM, SUP, MGR),
    "incidents.add_step": roles(CM, SUP, MGR),
    "incidents.update_step": roles(CM, SUP, MGR),
    "incidents.boards_list": roles(CM, SUP, MGR),
    "incidents.board_view": roles(CM, SUP, MGR),
    "incidents.board_create": ADMIN,
    "incidents.board_post": roles(CM, SUP, MGR),
    "incidents.post_pin": roles(CM, SUP, MGR),
    "incidents.post_unpin": roles(CM, SUP, MGR),
    "incidents.post_hide": roles(CM, SUP, MGR),
    "incidents.attachment": roles(CM, SUP, MGR),
    "incidents.care_list": roles(CM, MGR),
    "incidents.care_update": roles(CM, MGR),
    "incidents.notices_list": roles(CM, SUP, MGR),
    "incidents.notice_detail": roles(CM, SUP, MGR),
    "incidents.notice_new": roles(CM),
    "incidents.notice_retry": roles(CM),
    "incidents.partners": roles(CM, SUP, MGR),
    "incidents.partner_add": roles(CM),
    "incidents.partner_remove": roles(CM),
    "incidents.partner_import_preview": roles(CM),
    "incidents.partner_import_apply": roles(CM),
    "incidents.status_page": roles(CM, SUP),
    "incidents.groups": EVERY_ROLE,
    "incidents.group_view": EVERY_ROLE,
    "incidents.group_poll": EVERY_ROLE,
    "incidents.group_post": EVERY_ROLE,
    "incidents.group_read": EVERY_ROLE,
    "incidents.group_save": ADMIN,
    "incidents.notifications_page": EVERY_ROLE,
    "incidents.notifications_read": EVERY_ROLE,
    "incidents_hooks.sms_status": SIGNED,
    "incidents_public.status_page": PUBLIC,
    "incidents_public.status_json": PUBLIC,
    "incidents_public.staff_boards": PUBLIC,  # the staff member's own link is the key
    "incidents_public.staff_board": PUBLIC,
    "incidents_public.staff_post": PUBLIC,
    "incidents_public.staff_attachment": PUBLIC,
    "incidents_public.staff_family_consent": PUBLIC,
    # drills and reports
    "reports.static": PUBLIC,
    "reports.drill_list": roles(CM, MGR),
    "reports.drill_detail": roles(CM, MGR),
    "reports.drill_new": roles(CM),
    "reports.drill_edit": roles(CM),
    "reports.drill_state": roles(CM),
    "reports.drill_broadcast": roles(CM),
    "reports.drill_schedule": roles(CM, MGR),
    "reports.drill_schedule POST": roles(CM),
    "reports.drill_metrics_csv": roles(CM, MGR),
    "reports.drill_report_pdf": roles(CM, MGR),
    "reports.participant_add": roles(CM),
    "reports.participant_remove": roles(CM),
    "reports.observation_link": roles(CM),
    "reports.action_list": roles(CM, MGR),
    "reports.actions_csv": roles(CM, MGR),
    "reports.action_add": roles(CM),
    "reports.action_update": roles(CM),
    "reports.incident_record": roles(CM),
    # Participants of a drill write observations whatever their role: the view checks who takes part.
    "reports.drill_observe": LOGIN,
    "reports.entry_add": LOGIN,
    "reports.observe_by_link": PUBLIC,  # the drill's observation link is the key
    # dashboards
    "dashboards.static": PUBLIC,
    "dashboards.overview": LOGIN,
    "dashboards.live_json": Access("login_json"),  # a script gets a 401 it understands, not a redirect
}

FAKE_ID = 999999


def _routes(app: Flask) -> list[tuple[str, str, Any]]:
    out = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((rule.endpoint, method, rule))
    return sorted(out, key=lambda r: (r[0], r[1]))


def _expected(endpoint: str, method: str) -> Access | None:
    return EXPECTED.get(f"{endpoint} {method}") or EXPECTED.get(endpoint)


def _url(app: Flask, world: Installation, rule: Any) -> str:
    values: dict[str, Any] = {}
    for name in rule.arguments:
        if isinstance(rule._converters[name], IntegerConverter):
            values[name] = 0 if name == "index" else FAKE_ID
        elif name == "code":
            values[name] = world.site_a.code  # the scoped user's own site
        elif name == "slug":
            values[name] = world.org.slug
        elif name == "kind":
            values[name] = "voicemail"
        elif name == "filename":
            values[name] = "no-such-file.css"
        elif name == "value":
            values[name] = "1"
        else:  # tokens, upload ids: well-formed, unknown
            values[name] = "A" * 22
    with app.test_request_context():
        return url_for(rule.endpoint, **values)


def _outcome(response: Any) -> str:
    location = response.headers.get("Location", "")
    if response.status_code in (301, 302, 303) and "/login" in location:
        return "sign-in"
    if response.status_code in (401, 403):
        return str(response.status_code)
    return "allowed"


def test_every_endpoint_is_in_the_table(app: Flask) -> None:
    routes = {(endpoint, method) for endpoint, method, _ in _routes(app)}
    missing = sorted(f"{e} {m}" for e, m in routes if _expected(e, m) is None)
    assert not missing, (
        "These endpoints are not in the access table of tests/security/test_access.py. Decide who may use each "
        "and add it to EXPECTED:\n  " + "\n  ".join(missing)
    )
    known = {e for e, _ in routes}
    stale = sorted(key for key in EXPECTED if key.split(" ")[0] not in known)
    assert not stale, f"EXPECTED lists endpoints that no longer exist: {stale}"


def _walk(app: Flask, world: Installation, who: str) -> list[str]:
    client: FlaskClient = signed_in(app, world, who)
    token = csrf_from(client.get("/login" if who == "anonymous" else "/dashboard").text)
    problems: list[str] = []
    logout: tuple[str, Any] | None = None
    for endpoint, method, rule in _routes(app):
        access = _expected(endpoint, method)
        if access is None:
            continue  # reported by test_every_endpoint_is_in_the_table
        url = _url(app, world, rule)
        if access.kind == "logout":
            logout = (url, access)
            continue
        response = client.get(url) if method == "GET" else client.post(url, data={"csrf_token": token})
        got = _outcome(response)
        if response.status_code >= 500:
            problems.append(f"{who}: {method} {url} ({endpoint}) answered {response.status_code}")
            continue
        if access.kind == "public":
            continue  # the view itself answers (a wrong password is its own 401): anything but a crash
        if access.allows(who):
            wanted = {"allowed"}
        elif access.kind == "signed":
            wanted = {"403"}  # no signature, whoever asks
        elif access.kind == "api" or (access.kind == "login_json" and who == "anonymous"):
            wanted = {"401"}
        elif who == "anonymous":
            wanted = {"sign-in"}
        else:
            wanted = {"403"}
        if got not in wanted:
            problems.append(
                f"{who}: {method} {url} ({endpoint}) was {got} ({response.status_code}), expected {'/'.join(wanted)}"
            )
    assert logout is not None
    response = client.post(logout[0], data={"csrf_token": token})
    if _outcome(response) != "sign-in":
        problems.append(f"{who}: signing out ended in {response.status_code}")
    return problems


@pytest.mark.parametrize("who", PRINCIPALS)
def test_each_principal_gets_exactly_what_the_table_allows(
    app: Flask, installation: Installation, who: str
) -> None:
    problems = _walk(app, installation, who)
    assert not problems, "\n".join(problems)
