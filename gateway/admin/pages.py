"""The admin page's HTML: server-rendered, mobile-first, no external assets.

Everything substituted is escaped (``html.escape``); the one stylesheet and the one
script are inline and allowed by their hashes in the Content-Security-Policy, so no
other script can run (the live feed's rows are built with ``textContent``). Without
JavaScript every page still works; only the live updates need it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from html import escape
from string import Template
from typing import Any

from gateway.admin.i18n import MESSAGES
from gateway.portal.i18n import Lang

STYLE = """
*{box-sizing:border-box}body{margin:0;font:16px/1.4 system-ui,sans-serif;color:#1b1b1b;
background:#f6f6f4}header{background:#243b53;color:#fff;padding:.6rem 1rem}
header a{color:#fff}header button{color:#fff;background:transparent;
border:1px solid #fff;border-radius:.3rem}nav{display:flex;flex-wrap:wrap;gap:.2rem .9rem;
margin:.4rem 0}nav a{text-decoration:none}nav a.on{font-weight:700;text-decoration:underline}
main{padding:1rem;max-width:70rem;margin:auto}h1{font-size:1.3rem;margin:.2rem 0}
h2{font-size:1.1rem}table{border-collapse:collapse;width:100%;background:#fff}
td,th{padding:.35rem .4rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
.scroll{overflow-x:auto}.ok{color:#116329}.no{color:#a40e26}.msg{background:#fff3c4;
padding:.6rem;border-radius:.3rem}.err{background:#ffe1e1}form.inline{display:inline}
button,input,select{font:inherit;padding:.4rem .6rem;margin:.15rem 0}
label{display:block;margin:.4rem 0 .1rem}.pill{display:inline-block;padding:0 .5rem;
border-radius:1rem;background:#e4e7eb}.pill.ok{background:#d3f9d8}.pill.no{background:#ffd8d8}
.bar{display:flex;justify-content:space-between;align-items:center;flex-wrap:wrap;gap:.5rem}
.capture{background:#fff;padding:.2rem .8rem .8rem;margin:.5rem 0;border-radius:.3rem}
.capture input,.capture select{width:100%}
dl{display:grid;grid-template-columns:auto 1fr;gap:.2rem .8rem}dd{margin:0}
@media (min-width:40rem){body{font-size:15px}}
"""

SCRIPT = """
(function(){var t=document.getElementById('taps');var en=document.getElementById('enrol');
var sf=document.getElementById('staff');
if((!t&&!en&&!sf)||!window.EventSource)return;
var live=document.getElementById('live');var es=new EventSource('/events');
function cell(r,v,c){var d=document.createElement('td');d.textContent=v==null?'':String(v);
if(c)d.className=c;r.appendChild(d);}
es.addEventListener('enrol',function(){if(en)location.replace('/enrol');});
es.addEventListener('tap',function(m){if(!t)return;var e=JSON.parse(m.data);
var r=document.createElement('tr');r.className='tap';cell(r,e.local);
cell(r,e.reader);cell(r,e.token);cell(r,e.member||'-');cell(r,e.outcome,e.opened?'ok':'no');
cell(r,e.reason||'');cell(r,e.latency_ms);var n=document.getElementById('none');
if(n)n.remove();t.insertBefore(r,t.firstChild);while(t.rows.length>50)t.deleteRow(-1);});
es.addEventListener('status',function(m){var s=JSON.parse(m.data);
var a=document.getElementById('api');if(a){a.textContent=s.api;
a.className='pill '+(s.online?'ok':'no');}var q=document.getElementById('depth');
if(q)q.textContent=s.queue_depth;
if(sf&&s.staff&&s.staff!==sf.getAttribute('data-v'))location.replace('/staff');});
es.onopen=function(){if(live)live.className='pill ok';};
es.onerror=function(){if(live)live.className='pill no';};})();
"""


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_sha256(STYLE)}'; "
    f"script-src 'sha256-{_sha256(SCRIPT)}'; connect-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)

NAV = (
    ("/", "now"),
    ("/readers", "readers"),
    ("/queue", "queue"),
    ("/log", "log"),
    ("/rooms", "rooms"),
    ("/enrol", "enrol"),
)
STAFF_NAV = (*NAV[:5], ("/staff", "staff"), *NAV[5:])  # with [moco]
# The links of the app serving this request (set per request by web.py's middleware:
# *Staff* only where MOCO is configured).
SHOWN_NAV: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("admin_nav", default=NAV)


def t(lang: Lang, key: str, **values: object) -> str:
    """The message ``key`` in ``lang``, with ``$name``s filled in (not escaped)."""
    return Template(MESSAGES[lang][key]).safe_substitute({k: str(v) for k, v in values.items()})


def e(value: object) -> str:
    return escape("" if value is None else str(value))


def layout(
    lang: Lang, title_key: str, body: str, *, csrf: str | None, path: str, script: bool = False
) -> bytes:
    title = t(lang, title_key)
    nav = ""
    if csrf is not None:
        links = "".join(
            f'<a href="{href}"{" class=on" if href == path else ""}>{e(t(lang, key))}</a>'
            for href, key in SHOWN_NAV.get()
        )
        other = Lang.DE if lang is Lang.EN else Lang.EN
        nav = (
            f'<nav>{links}</nav><div class="bar"><a href="?lang={other.value}" '
            f'hreflang="{other.value}">{e(t(other, "lang_name"))}</a>'
            f'<form class="inline" method="post" action="/logout">{hidden(csrf)}'
            f"<button>{e(t(lang, 'logout'))}</button></form></div>"
        )
    tail = f"<script>{SCRIPT}</script>" if script else ""
    page = (
        f'<!doctype html><html lang="{lang.value}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{e(title)} · {e(t(lang, 'app'))}</title><style>{STYLE}</style></head>"
        f"<body><header><strong>{e(t(lang, 'app'))}</strong>{nav}</header>"
        f"<main><h1>{e(title)}</h1>{body}</main>{tail}</body></html>"
    )
    return page.encode()


def hidden(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{e(csrf)}">'


def message(text: str | None, *, error: bool = False) -> str:
    if not text:
        return ""
    return f'<p class="msg{" err" if error else ""}" role="status">{e(text)}</p>'


def table(head: Sequence[str], rows: Iterable[Sequence[str]], *, body_id: str = "") -> str:
    """A table; ``rows`` hold HTML already escaped."""
    th = "".join(f"<th>{e(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    tbody = f'<tbody id="{body_id}">' if body_id else "<tbody>"
    return (
        f'<div class="scroll"><table><thead><tr>{th}</tr></thead>{tbody}{trs}</tbody></table></div>'
    )


def login_page(lang: Lang, csrf: str, note: str | None) -> bytes:
    body = (
        f"{message(note, error=True)}"
        f'<form method="post" action="/login">{hidden(csrf)}'
        f'<label for="pw">{e(t(lang, "password"))}</label>'
        '<input id="pw" name="password" type="password" autocomplete="current-password" '
        "required autofocus>"
        f" <button>{e(t(lang, 'login'))}</button></form>"
    )
    return layout(lang, "login", body, csrf=None, path="/login")


def tap_row(ev: Mapping[str, Any]) -> list[str]:
    cls = "ok" if ev["opened"] else "no"
    return [
        e(ev.get("local") or str(ev["at"]).replace("T", " ")[:19] + " UTC"),
        e(ev["reader"]),
        e(ev["token"]),
        e(ev["member"] or "-"),
        f'<span class="{cls}">{e(ev["outcome"])}</span>',
        e(ev["reason"] or ""),
        e(ev["latency_ms"]),
    ]


def tap_head(lang: Lang) -> list[str]:
    return [
        t(lang, k) for k in ("time", "reader", "card", "member", "outcome", "reason", "latency")
    ]


def api_state(lang: Lang, status: Mapping[str, Any]) -> tuple[str, bool]:
    api = status.get("api", {})
    online = api.get("breaker") == "closed" and not api.get("auth_failed")
    text = t(lang, "online" if online else "offline")
    if api.get("auth_failed"):
        text += f" ({t(lang, 'auth_failed')})"
    return text, online


def now_page(
    lang: Lang, csrf: str, status: Mapping[str, Any], taps: Sequence[Mapping[str, Any]]
) -> bytes:
    api_text, online = api_state(lang, status)
    limits = status.get("rate_limits", [])
    summary = (
        f"<dl><dt>{e(t(lang, 'api'))}</dt><dd>"
        f'<span id="api" class="pill {"ok" if online else "no"}">'
        f"{e(api_text)}</span></dd>"
        f'<dt>{e(t(lang, "queued"))}</dt><dd id="depth">{e(status.get("queue_depth", 0))}</dd>'
        f"<dt>{e(t(lang, 'checked_in'))}</dt><dd>{e(status.get('checked_in', 0))}</dd>"
        f"<dt>{e(t(lang, 'tokens'))}</dt><dd>{e(status.get('tokens', 0))}</dd></dl>"
    )
    limit_table = table(
        ["", t(lang, "used"), t(lang, "blocked_for")],
        ([e(g["group"]), f"{e(g['used'])}/{e(g['limit'])}", e(g["blocked_for_s"])] for g in limits),
    )
    rows = [tap_row(ev) for ev in reversed(taps)]
    if not rows:
        rows = []
    taps_html = table(tap_head(lang), rows, body_id="taps")
    if not taps:
        taps_html += f'<p id="none">{e(t(lang, "no_taps"))}</p>'
    body = (
        f"{storage_warnings(lang, status)}"
        f'{summary}<h2>{e(t(lang, "last_taps"))} <span id="live" class="pill">'
        f"{e(t(lang, 'live'))}</span></h2>{taps_html}"
        f"<h2>{e(t(lang, 'rate_limits'))}</h2>{limit_table}"
    )
    return layout(lang, "now", body, csrf=csrf, path="/", script=True)


def storage_warnings(lang: Lang, status: Mapping[str, Any]) -> str:
    """What is not safely on disk, at the top of the page a manager looks at first."""
    out = ""
    if status.get("state_problem"):
        out += (
            f'<p class="msg err" id="not-durable">{e(t(lang, "not_durable"))} '
            f"{e(status['state_problem'])}</p>"
        )
    if status.get("unsaved_records"):
        out += f'<p class="msg err">{e(t(lang, "in_memory"))}: {e(status["unsaved_records"])}</p>'
    return out


def readers_page(
    lang: Lang,
    csrf: str,
    status: Mapping[str, Any],
    doors: Sequence[str],
    note: str | None,
    error: bool,
) -> bytes:
    rows = []
    for name, r in status.get("readers", {}).items():
        stats = r.get("stats") or {}
        counters = ", ".join(f"{k}: {v}" for k, v in stats.items())
        rows.append([e(name), e(r.get("state")), e(r.get("error") or ""), e(counters)])
    door_rows = [
        [
            e(d),
            f'<form method="post" action="/doors/{e(d)}/test">{hidden(csrf)}'
            f"<button>{e(t(lang, 'test_door'))}</button></form>",
        ]
        for d in doors
    ]
    body = (
        message(note, error=error)
        + table([t(lang, "reader"), t(lang, "state"), t(lang, "error"), t(lang, "counters")], rows)
        + f"<h2>{e(t(lang, 'door'))}</h2>"
        + table([t(lang, "door"), ""], door_rows)
    )
    return layout(lang, "readers", body, csrf=csrf, path="/readers")


def confirm_page(
    lang: Lang, csrf: str, *, title: str, question: str, action: str, button: str, back: str
) -> bytes:
    """Asks before a POST that acts (opens a door, revokes a card): the same form again,
    with ``confirm=yes``; the other way leads back to ``back``."""
    body = (
        f"<p>{e(question)}</p>"
        f'<form method="post" action="{e(action)}">{hidden(csrf)}'
        '<input type="hidden" name="confirm" value="yes">'
        f"<button>{e(t(lang, button))}</button></form> "
        f'<a href="{e(back)}">{e(t(lang, "cancel"))}</a>'
    )
    return layout(lang, title, body, csrf=csrf, path=back)


def confirm_door_page(lang: Lang, csrf: str, door: str) -> bytes:
    return confirm_page(
        lang,
        csrf,
        title="test_door",
        question=t(lang, "confirm_door", door=door),
        action=f"/doors/{door}/test",
        button="open_now",
        back="/readers",
    )


def queue_page(
    lang: Lang,
    csrf: str,
    entries: Sequence[Mapping[str, str]],
    *,
    show_all: bool,
    note: str | None,
    error: bool,
) -> bytes:
    rows = []
    for en in entries:
        actions = ""
        if en["state"] in ("pending", "sending", "failed"):
            actions = "".join(
                f'<form class="inline" method="post" action="/queue/{e(en["id"])}/{op}">'
                f"{hidden(csrf)}<button>{e(t(lang, op))}</button></form> "
                for op in ("retry", "drop")
            )
        rows.append(
            [
                e(en["id"]),
                e(en["state"]),
                e(en["kind"]),
                e(en["tapped_at"]),
                e(en["attempts"]),
                e(en["member"]),
                e(en["token"]),
                e(en["note"]),
                actions,
            ]
        )
    head = [
        t(lang, k) for k in ("entry", "state", "kind", "time", "tries", "member", "card", "note")
    ] + [""]
    body = message(note, error=error)
    body += table(head, rows) if rows else f"<p>{e(t(lang, 'queue_empty'))}</p>"
    link = "/queue" if show_all else "/queue?all=1"
    body += f'<p><a href="{link}">{e(t(lang, "show_all" if not show_all else "queue"))}</a></p>'
    return layout(lang, "queue", body, csrf=csrf, path="/queue")


def log_page(
    lang: Lang,
    csrf: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    text: str,
    reader: str,
    day: str,
    readers: Sequence[str],
    days: int,
    csv_href: str,
) -> bytes:
    options = f'<option value="">{e(t(lang, "all_readers"))}</option>' + "".join(
        f"<option{' selected' if r == reader else ''}>{e(r)}</option>" for r in readers
    )
    form = (
        '<form method="get" action="/log">'
        f'<label for="q">{e(t(lang, "member_or_id"))}</label>'
        f'<input id="q" name="q" value="{e(text)}" maxlength="100">'
        f'<label for="reader">{e(t(lang, "reader"))}</label>'
        f'<select id="reader" name="reader">{options}</select>'
        f'<label for="day">{e(t(lang, "day"))}</label>'
        f'<input id="day" name="day" type="date" value="{e(day)}"> '
        f"<button>{e(t(lang, 'search'))}</button></form>"
        f'<p><a href="{e(csv_href)}" download>{e(t(lang, "csv"))}</a> · '
        f"{e(t(lang, 'retention', days=days))}</p>"
    )
    body = form + (
        table(tap_head(lang), [tap_row(r) for r in rows])
        if rows
        else f"<p>{e(t(lang, 'log_empty'))}</p>"
    )
    return layout(lang, "log", body, csrf=csrf, path="/log")


def rooms_page(lang: Lang, csrf: str, rooms: Mapping[str, Mapping[str, Any]]) -> bytes:
    rows = []
    for door, r in rooms.items():
        shown = r.get("current") or r.get("next")
        booking = ""
        if shown:
            label = t(lang, "current" if r.get("current") else "next")
            booking = (
                f"{e(label)}: {e(shown['from'])}-{e(shown['to'])} {e(shown.get('member') or '')}"
            )
        rows.append(
            [
                e(door),
                e(r.get("room") or r.get("resource_id")),
                booking,
                e(r.get("snapshot_age_s")),
                e(r.get("error") or ""),
            ]
        )
    head = [t(lang, k) for k in ("door", "room", "current", "snapshot_age", "error")]
    body = table(head, rows) if rows else f"<p>{e(t(lang, 'no_rooms'))}</p>"
    return layout(lang, "rooms", body, csrf=csrf, path="/rooms")


def notice_page(lang: Lang, key: str, csrf: str | None) -> bytes:
    return layout(lang, "app", f"<p>{e(t(lang, key))}</p>", csrf=csrf, path="")
