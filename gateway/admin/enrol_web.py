"""The admin page's enrolment routes: arm a reader, register or forget a captured card,
revoke a registered one (``gateway.admin.enrol`` does the work)."""

from __future__ import annotations

import re
from datetime import datetime

import structlog
from aiohttp import web

from gateway.admin import enrol_pages, pages
from gateway.admin.enrol import EnrolRefused
from gateway.admin.web import STATE, csrf_for, form_field, html_page, lang_of
from gateway.model import Membership

log = structlog.get_logger(__name__)

MEMBERSHIP_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # Cobot's ids are 32 hex digits
# An e-mail as a login: something@something, no blanks (Cobot judges the rest).
EMAIL = re.compile(r"[^\s@]{1,64}@[^\s@]{1,190}")


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/enrol", _enrol)
    r.add_post("/enrol/start", _enrol_start)
    r.add_post("/enrol/{id:[A-Za-z0-9_-]{1,40}}/{op:register|forget|find}", _enrol_op)
    r.add_post("/cards/{ref:[0-9a-f]{24}}/revoke", _revoke)


async def _enrol(
    request: web.Request,
    note: str | None = None,
    error: bool = False,
    found: tuple[str, Membership] | None = None,
) -> web.StreamResponse:
    """The page; ``found``: (capture id, member an e-mail search found for it)."""
    backend = request.app[STATE].backend
    enrolment = backend.enrolment
    captures = [
        {
            "id": c.id,
            "reader": c.reader,
            "token": c.shown,
            "at": datetime.fromisoformat(c.wall).astimezone().strftime("%H:%M:%S"),
        }
        for c in enrolment.captures()
    ]
    body = enrol_pages.enrol_page(
        lang_of(request),
        csrf_for(request),
        readers=sorted(backend.status().get("readers", {})),
        armed=enrolment.armed(),
        captures=captures,
        members=await backend.memberships(),
        cards=await backend.cards(),
        note=note,
        error=error,
        found=found,
    )
    return html_page(request, body)


async def _enrol_start(request: web.Request) -> web.StreamResponse:
    backend = request.app[STATE].backend
    reader = form_field(await request.post(), "reader") or ""
    if reader not in backend.status().get("readers", {}):
        return await _enrol(request, pages.t(lang_of(request), "no_such_reader"), True)
    backend.enrolment.arm(reader)
    log.info("admin_enrol_start", reader=reader, remote=request.remote)
    return await _enrol(request, pages.t(lang_of(request), "enrol_waiting", reader=reader))


async def _enrol_op(request: web.Request) -> web.StreamResponse:
    backend = request.app[STATE].backend
    lang = lang_of(request)
    capture_id, op = request.match_info["id"], request.match_info["op"]
    if op == "forget":
        backend.enrolment.forget(capture_id)
        return await _enrol(request)
    form = await request.post()
    if op == "find":
        return await _find(request, capture_id, (form_field(form, "email") or "").strip())
    other = (form_field(form, "other_id") or "").strip()
    membership_id = other or form_field(form, "membership_id") or ""
    member = next((m for m in await backend.memberships() if m.id == membership_id), None)
    if member is None and not other:
        member = backend.found_member(membership_id)
    if member is None and other and MEMBERSHIP_ID.fullmatch(other):
        # A member without a card yet: Cobot checks the id (422 when there is none)
        # and its answer names the member.
        member = Membership(other, "")
    if member is None:
        return await _enrol(request, pages.t(lang, "no_such_member"), True)
    try:
        capture = await backend.register_card(capture_id, member)
    except KeyError:
        return await _enrol(request, pages.t(lang, "capture_gone"), True)
    except EnrolRefused as exc:
        return await _enrol(request, pages.t(lang, "enrol_refused", reason=str(exc)), True)
    name = backend.enrolment.last_name or member.name or member.id
    return await _enrol(request, pages.t(lang, "enrolled", token=capture.shown, member=name))


async def _find(request: web.Request, capture_id: str, email: str) -> web.StreamResponse:
    """Cobot has no member search: ``GET /api/check_in?login=:email`` finds a member only
    while they are checked in, which the page says plainly when it finds nobody."""
    backend = request.app[STATE].backend
    lang = lang_of(request)
    if not EMAIL.fullmatch(email):
        return await _enrol(request, pages.t(lang, "bad_email"), True)
    try:
        member = await backend.find_member(email)
    except EnrolRefused as exc:
        return await _enrol(request, pages.t(lang, "find_failed", reason=str(exc)), True)
    if member is None:
        return await _enrol(request, pages.t(lang, "not_checked_in"), True)
    shown = member.name or member.id
    return await _enrol(
        request, pages.t(lang, "found_member", member=shown), found=(capture_id, member)
    )


async def _revoke(request: web.Request) -> web.StreamResponse:
    backend = request.app[STATE].backend
    lang = lang_of(request)
    ref = request.match_info["ref"]
    if form_field(await request.post(), "confirm") != "yes":
        card = next((c for c in await backend.cards() if c[0] == ref), None)
        if card is None:
            return await _enrol(request, pages.t(lang, "no_such_card"), True)
        body = enrol_pages.confirm_revoke_page(lang, csrf_for(request), ref, card[1], card[2].name)
        return html_page(request, body)
    try:
        shown, member = await backend.revoke_card(ref)
    except KeyError:
        return await _enrol(request, pages.t(lang, "no_such_card"), True)
    except EnrolRefused as exc:
        return await _enrol(request, pages.t(lang, "enrol_refused", reason=str(exc)), True)
    log.info("admin_card_revoked", remote=request.remote)
    return await _enrol(request, pages.t(lang, "revoked", token=shown, member=member.name))
