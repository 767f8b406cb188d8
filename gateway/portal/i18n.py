"""The portal's words in English and German, and choosing between them.

Messages are ``string.Template`` texts with ``$name`` placeholders; the page renderer
escapes whatever is substituted. A language is picked from an explicit choice (the
page's language links), else from ``Accept-Language``, else the default.
"""

from __future__ import annotations

import enum
from string import Template


class Lang(enum.StrEnum):
    EN = "en"
    DE = "de"


DEFAULT = Lang.EN
# Accept-Language entries looked at; a longer header is cut, never parsed whole.
MAX_LANGUAGE_RANGES = 16

MESSAGES: dict[Lang, dict[str, str]] = {
    Lang.EN: {
        "lang_name": "English",
        "title_sign_in": "Sign in to the Wi-Fi",
        "intro": "Welcome to $space. Sign in with your Cobot account to go online; "
        "this also checks you in for today.",
        "login": "E-mail or username",
        "password": "Password",
        "submit": "Sign in and check in",
        "device_note": "Your device's network address is saved with your account, so next "
        "time it goes online without this page.",
        "title_online": "You're online",
        "welcome": "Welcome, $name. You are checked in.",
        "welcome_anonymous": "You are checked in.",
        "online_until": "This device is online until $until.",
        "other_member": "This device is registered to another member, so it will show this "
        "page again next time. Ask the staff if it is yours.",
        "device_not_saved": "Guest and admin accounts cannot register devices, so this "
        "device will show this page again next time.",
        "network_failed": "The network could not let your device out, so you were not "
        "checked in. Please try again in a moment; if it happens again, tell the staff.",
        "title_error": "Sign-in failed",
        "wrong_password": "The login or password is wrong.",
        "no_time_passes": "You have no time passes left. Buy one in Cobot or ask the staff.",
        "not_confirmed": "Your membership is not confirmed yet. Please ask the staff.",
        "refused": "Cobot did not check you in: $reason",
        "check_in_ended": "Your check-in for today has already ended.",
        "throttled": "Too many failed attempts. Please wait $minutes minutes and try again.",
        "unavailable": "Cobot cannot be reached right now. Please try again in a minute.",
        "misconfigured": "The portal cannot talk to Cobot. Please tell the staff.",
        "unknown_device": "Your device could not be identified on the network. Reconnect to "
        "the Wi-Fi and try again.",
        "form_expired": "The form had expired. Please sign in again.",
        "missing_fields": "Please enter your login and password.",
        "not_here": "This network's sign-in page is only for devices on its Wi-Fi.",
        "title_not_found": "Not found",
        "too_large": "That request was too large.",
        "bad_request": "That request could not be read.",
        "title_problem": "Something went wrong",
        "busy": "Many people are signing in right now. Please try again in a moment.",
        "try_again": "The portal could not answer that just now. Please try again in a moment.",
        "internal_error": "The portal made a mistake. Please try again; if it happens "
        "again, tell the staff.",
    },
    Lang.DE: {
        "lang_name": "Deutsch",
        "title_sign_in": "Im WLAN anmelden",
        "intro": "Willkommen bei $space. Melde dich mit deinem Cobot-Konto an, um online "
        "zu gehen; damit bist du auch für heute eingecheckt.",
        "login": "E-Mail-Adresse oder Benutzername",
        "password": "Passwort",
        "submit": "Anmelden und einchecken",
        "device_note": "Die Netzwerkadresse deines Geräts wird mit deinem Konto gespeichert, "
        "damit es beim nächsten Mal ohne diese Seite online geht.",
        "title_online": "Du bist online",
        "welcome": "Willkommen, $name. Du bist eingecheckt.",
        "welcome_anonymous": "Du bist eingecheckt.",
        "online_until": "Dieses Gerät ist online bis $until.",
        "other_member": "Dieses Gerät ist für ein anderes Mitglied registriert und zeigt "
        "diese Seite deshalb beim nächsten Mal wieder. Frag das Team, wenn es deins ist.",
        "device_not_saved": "Gast- und Admin-Konten können keine Geräte registrieren; "
        "dieses Gerät zeigt diese Seite deshalb beim nächsten Mal wieder.",
        "network_failed": "Das Netzwerk konnte dein Gerät nicht freischalten, deshalb wurdest "
        "du nicht eingecheckt. Bitte versuch es gleich noch einmal; wenn es wieder passiert, "
        "sag dem Team Bescheid.",
        "title_error": "Anmeldung fehlgeschlagen",
        "wrong_password": "Login oder Passwort ist falsch.",
        "no_time_passes": "Du hast keine Zeitpässe mehr. Kaufe einen in Cobot oder frag das Team.",
        "not_confirmed": "Deine Mitgliedschaft ist noch nicht bestätigt. Bitte frag das Team.",
        "refused": "Cobot hat dich nicht eingecheckt: $reason",
        "check_in_ended": "Dein Check-in für heute ist schon beendet.",
        "throttled": "Zu viele Fehlversuche. Bitte warte $minutes Minuten und versuch es "
        "dann noch einmal.",
        "unavailable": "Cobot ist gerade nicht erreichbar. Bitte versuch es in einer Minute "
        "noch einmal.",
        "misconfigured": "Das Portal kann nicht mit Cobot sprechen. Bitte sag dem Team Bescheid.",
        "unknown_device": "Dein Gerät konnte im Netzwerk nicht erkannt werden. Verbinde dich "
        "neu mit dem WLAN und versuch es noch einmal.",
        "form_expired": "Das Formular war abgelaufen. Bitte melde dich noch einmal an.",
        "missing_fields": "Bitte gib Login und Passwort ein.",
        "not_here": "Die Anmeldeseite dieses Netzwerks ist nur für Geräte in seinem WLAN.",
        "title_not_found": "Nicht gefunden",
        "too_large": "Diese Anfrage war zu groß.",
        "bad_request": "Diese Anfrage konnte nicht gelesen werden.",
        "title_problem": "Etwas ist schiefgelaufen",
        "busy": "Gerade melden sich viele an. Bitte versuch es gleich noch einmal.",
        "try_again": "Das Portal konnte gerade nicht antworten. Bitte versuch es gleich "
        "noch einmal.",
        "internal_error": "Im Portal ist ein Fehler passiert. Bitte versuch es noch einmal; "
        "wenn es wieder passiert, sag dem Team Bescheid.",
    },
}


def text(lang: Lang, key: str, **values: str) -> str:
    """The message ``key`` in ``lang`` with ``values`` filled in (not yet escaped)."""
    return Template(MESSAGES[lang][key]).safe_substitute(values)


def parse_lang(value: str | None) -> Lang | None:
    """An explicit choice (``?lang=de``, the form's hidden field): only known codes."""
    try:
        return Lang(value) if value else None
    except ValueError:
        return None


def negotiate(accept_language: str | None, default: Lang = DEFAULT) -> Lang:
    """The best of our languages for an ``Accept-Language`` header (RFC 9110 12.5.4)."""
    if not accept_language:
        return default
    best: tuple[float, int] | None = None
    chosen = default
    for position, item in enumerate(accept_language.split(",")[:MAX_LANGUAGE_RANGES]):
        tag, _, params = item.strip().partition(";")
        quality = _quality(params)
        primary = tag.strip().lower().split("-", 1)[0]
        lang = parse_lang(primary)
        if lang is None or quality <= 0:
            continue
        # Higher q wins; on a tie the earlier entry does.
        rank = (quality, -position)
        if best is None or rank > best:
            best, chosen = rank, lang
    return chosen


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0
