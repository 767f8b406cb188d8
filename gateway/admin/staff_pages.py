"""The *Staff* page's HTML (see ``pages`` for the shared layout and escaping)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from gateway.admin.pages import e, layout, t, table
from gateway.portal.i18n import Lang

if TYPE_CHECKING:
    from gateway.admin.staff_web import MocoState, StaffRow


def staff_page(
    lang: Lang,
    csrf: str,
    *,
    rows: Sequence[StaffRow],
    state: MocoState,
    waiting: Sequence[Mapping[str, str]],
    version: str,
) -> bytes:
    text = t(lang, "online" if state.online else "offline")
    if state.auth_failed:
        text += f" ({t(lang, 'moco_key_refused')})"
    summary = (
        f'<dl><dt>{e(t(lang, "moco"))}</dt><dd><span id="moco" class="pill '
        f'{"ok" if state.online else "no"}">{e(text)}</span></dd>'
    )
    if state.last_error and not state.online:
        summary += f"<dt>{e(t(lang, 'error'))}</dt><dd>{e(state.last_error)}</dd>"
    summary += (
        f"<dt>{e(t(lang, 'staff_in'))}</dt>"
        f'<dd id="staff-count">{sum(1 for r in rows if r.clocked_in)}</dd>'
        f"<dt>{e(t(lang, 'staff_waiting'))}</dt>"
        f'<dd id="staff-waiting">{len(waiting) + state.unsaved}</dd></dl>'
    )
    people = [
        [
            e(r.name or t(lang, "moco_user", id=r.user_id)),
            e(r.user_id),
            f'<span class="{"ok" if r.clocked_in else ""}">'
            f"{e(t(lang, 'clocked_in' if r.clocked_in else 'clocked_out'))}</span>",
            e(r.since or ""),
        ]
        for r in rows
    ]
    staff = (
        table(
            [t(lang, "name"), t(lang, "moco_user_id"), t(lang, "state"), t(lang, "since")],
            people,
            body_id="clocked",
        )
        if people
        else f"<p>{e(t(lang, 'no_staff'))}</p>"
    )
    pending = [
        [
            e(w["id"]),
            e(w["user_id"]),
            e(w["tapped_at"]),
            e(w["reader"]),
            e(w["state"]),
            e(w["attempts"]),
            e(w["error"]),
        ]
        for w in waiting
    ]
    head = [t(lang, k) for k in ("entry", "moco_user_id", "time", "reader", "state", "tries")]
    waiting_html = (
        table([*head, t(lang, "note")], pending)
        if pending
        else f"<p>{e(t(lang, 'staff_nothing_waiting'))}</p>"
    )
    if state.unsaved:
        waiting_html += f'<p class="msg err">{e(t(lang, "staff_unsaved", n=state.unsaved))}</p>'
    body = (
        f'<div id="staff" data-v="{e(version)}">{summary}'
        f"<p>{e(t(lang, 'staff_belief'))}</p>{staff}"
        f"<h2>{e(t(lang, 'staff_pending'))}</h2>{waiting_html}"
        f'<p><a href="/queue">{e(t(lang, "staff_to_queue"))}</a></p></div>'
    )
    return layout(lang, "staff", body, csrf=csrf, path="/staff", script=True)
