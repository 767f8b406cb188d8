"""The portal's HTML: small templates, every substituted value escaped.

Templates are ``string.Template`` files beside this module. ``fill`` escapes every
value unless it is ``Html`` (markup this module built from escaped parts), so a login,
an API reason or a space name can never become markup. The stylesheet is inline (the
page needs no second request and nothing from the internet) and allowed by its hash in
the Content-Security-Policy, which allows nothing else.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import html
from dataclasses import dataclass
from datetime import datetime, tzinfo
from importlib import resources
from string import Template

from gateway.portal.i18n import MESSAGES, Lang, text

MAX_FIELD = 200  # characters of a login or password the form accepts


class Html(str):
    """Markup that is already safe: built here from escaped parts."""

    __slots__ = ()


def _load(name: str) -> Template:
    return Template(
        resources.files("gateway.portal").joinpath("templates", name).read_text("utf-8")
    )


_PAGE = _load("page.html")
_SIGN_IN = _load("sign_in.html")
_ONLINE = _load("online.html")
_MESSAGE = _load("message.html")
_STYLE = resources.files("gateway.portal").joinpath("templates", "style.css").read_text("utf-8")
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()

CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def escape(value: object) -> Html:
    return value if isinstance(value, Html) else Html(html.escape(str(value), quote=True))


def fill(template: Template, **values: object) -> Html:
    """Substitute ``values`` into ``template``, escaping all but ``Html``."""
    return Html(template.substitute({k: escape(v) for k, v in values.items()}))


class PageKind(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    OK = "ok"


@dataclass(frozen=True, slots=True)
class Message:
    kind: PageKind
    text: str


def _message(message: Message | None) -> Html:
    if message is None:
        return Html("")
    role = "alert" if message.kind is PageKind.ERROR else "status"
    return fill(_MESSAGE, kind=message.kind.value, role=role, text=message.text)


def _languages(current: Lang) -> Html:
    links = []
    for lang in Lang:
        name = MESSAGES[lang]["lang_name"]
        if lang is current:
            links.append(fill(Template('<a aria-current="true">$name</a>'), name=name))
        else:
            links.append(
                fill(
                    Template('<a href="/?lang=$code" hreflang="$code" lang="$code">$name</a>'),
                    code=lang.value,
                    name=name,
                )
            )
    return Html("".join(links))


def _page(lang: Lang, space: str, title: str, content: Html) -> bytes:
    page = fill(
        _PAGE,
        lang=lang.value,
        title=title,
        space=space,
        style=Html(_STYLE),
        content=content,
        languages=_languages(lang),
    )
    return page.encode("utf-8")


def sign_in_page(
    lang: Lang, space: str, *, csrf: str, login: str = "", message: Message | None = None
) -> bytes:
    content = fill(
        _SIGN_IN,
        intro=text(lang, "intro", space=space),
        message=_message(message),
        csrf=csrf,
        lang=lang.value,
        login_label=text(lang, "login"),
        password_label=text(lang, "password"),
        submit=text(lang, "submit"),
        device_note=text(lang, "device_note"),
        login=login[:MAX_FIELD],
        max_field=str(MAX_FIELD),
        invalid=Html(' aria-invalid="true" aria-describedby="message"' if message else ""),
    )
    return _page(lang, space, text(lang, "title_sign_in"), content)


def online_page(
    lang: Lang,
    space: str,
    *,
    until: str,
    name: str | None = None,
    message: Message | None = None,
) -> bytes:
    welcome = text(lang, "welcome", name=name) if name else text(lang, "welcome_anonymous")
    content = fill(
        _ONLINE,
        welcome=welcome,
        online_until=text(lang, "online_until", until=until),
        message=_message(message),
    )
    return _page(lang, space, text(lang, "title_online"), content)


def notice_page(lang: Lang, space: str, *, title_key: str, message_key: str) -> bytes:
    """A page with one error message and no form (403, 404, 413...)."""
    content = _message(Message(PageKind.ERROR, text(lang, message_key)))
    return _page(lang, space, text(lang, title_key), content)


def format_until(until: datetime, now: datetime, zone: tzinfo | None = None) -> str:
    """``"23:59"`` today, ``"2025-03-04 23:59"`` on another day (local time)."""
    local, today = until.astimezone(zone), now.astimezone(zone)
    if local.date() == today.date():
        return local.strftime("%H:%M")
    return local.strftime("%Y-%m-%d %H:%M")
