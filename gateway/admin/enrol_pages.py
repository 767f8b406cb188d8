"""The enrolment page's HTML (see ``pages`` for the shared layout and escaping)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.admin.pages import confirm_page, e, hidden, layout, message, t, table
from gateway.portal.i18n import Lang


def enrol_page(
    lang: Lang,
    csrf: str,
    *,
    readers: Sequence[str],
    armed: Mapping[str, float],
    captures: Sequence[Mapping[str, str]],
    members: Sequence[Any],
    cards: Sequence[tuple[str, str, Any]],
    note: str | None,
    error: bool,
    found: tuple[str, Any] | None = None,
) -> bytes:
    options = "".join(f"<option>{e(r)}</option>" for r in readers)
    waiting = "".join(
        f"<p class=msg>{e(t(lang, 'enrol_waiting_left', reader=r, seconds=int(s)))}</p>"
        for r, s in armed.items()
    )
    start = (
        f'<form method="post" action="/enrol/start">{hidden(csrf)}'
        f'<label for="reader">{e(t(lang, "reader"))}</label>'
        f'<select id="reader" name="reader">{options}</select> '
        f"<button>{e(t(lang, 'enrol_start'))}</button></form>"
    )
    member_options = "".join(
        f'<option value="{e(m.id)}">{e(m.name or m.id)}</option>' for m in members
    )
    blocks = []
    for c in captures:
        options = member_options
        if found is not None and found[0] == c["id"]:
            m = found[1]
            shown = t(lang, "found_option", member=m.name or m.id)
            options = f'<option value="{e(m.id)}" selected>{e(shown)}</option>' + options
        # The e-mail search first: what it finds comes back preselected below.
        register = (
            f'<form method="post" action="/enrol/{e(c["id"])}/find">{hidden(csrf)}'
            f'<label for="f-{e(c["id"])}">{e(t(lang, "find_label"))}</label>'
            f'<input id="f-{e(c["id"])}" name="email" type="email" maxlength="254" '
            f'autocomplete="off"> <button>{e(t(lang, "find"))}</button></form>'
            f'<form method="post" action="/enrol/{e(c["id"])}/register">{hidden(csrf)}'
            f'<label for="m-{e(c["id"])}">{e(t(lang, "member"))}</label>'
            f'<select id="m-{e(c["id"])}" name="membership_id">{options}</select>'
            f'<label for="o-{e(c["id"])}">{e(t(lang, "other_id"))}</label>'
            f'<input id="o-{e(c["id"])}" name="other_id" maxlength="64" autocomplete="off"> '
            f"<button>{e(t(lang, 'register'))}</button></form>"
            f'<form class="inline" method="post" action="/enrol/{e(c["id"])}/forget">'
            f"{hidden(csrf)}<button>{e(t(lang, 'forget'))}</button></form>"
        )
        what = t(lang, "captured_card", token=c["token"], reader=c["reader"], time=c["at"])
        blocks.append(
            f'<section class="capture"><p><strong>{e(what)}</strong></p>{register}</section>'
        )
    body = message(note, error=error) + f'<div id="enrol">{waiting}{start}</div>'
    body += f"<h2>{e(t(lang, 'captured'))}</h2>"
    if blocks:
        body += "".join(blocks)
    else:
        body += f"<p>{e(t(lang, 'no_captures'))}</p>"
    card_rows = [
        [
            e(shown),
            e(member.name or member.id),
            f'<form method="post" action="/cards/{e(ref)}/revoke">{hidden(csrf)}'
            f"<button>{e(t(lang, 'revoke'))}</button></form>",
        ]
        for ref, shown, member in cards
    ]
    body += f"<h2>{e(t(lang, 'cards'))}</h2>"
    body += table([t(lang, "card"), t(lang, "member"), ""], card_rows)
    return layout(lang, "enrol", body, csrf=csrf, path="/enrol", script=True)


def confirm_revoke_page(lang: Lang, csrf: str, ref: str, shown: str, member: str) -> bytes:
    return confirm_page(
        lang,
        csrf,
        title="revoke",
        question=t(lang, "confirm_revoke", token=shown, member=member),
        action=f"/cards/{ref}/revoke",
        button="revoke",
        back="/enrol",
    )
