"""Lead capture as Rocket.Chat does it: emails and phones found in a visitor's messages are saved
on the visitor, and `LeadCapture` is sent. Pure: no Kafka, no HTTP.

Rocket.Chat: `apps/meteor/app/livechat/server/hooks/leadCapture.ts` finds the matches,
`LivechatVisitors.saveGuestEmailPhoneById` saves them with `$addToSet`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

# Rocket.Chat's defaults for Livechat_lead_email_regex (flags `gi`) and
# Livechat_lead_phone_regex (flags `g`).
DEFAULT_EMAIL_REGEX = r"\b[A-Z0-9._%+-]+@(?:[A-Z0-9-]+\.)+[A-Z]{2,4}\b"
DEFAULT_PHONE_REGEX = (
    r"((?:\([0-9]{1,3}\)|[0-9]{2})[ \-]*?[0-9]{4,5}(?:[\-\s\_]{1,2})?[0-9]{4}(?:(?=[^0-9])|$)"
    r"|[0-9]{4,5}(?:[\-\s\_]{1,2})?[0-9]{4}(?:(?=[^0-9])|$))"
)

EMAIL_REGEX_SETTING = "OMNIHOOKS_LEAD_EMAIL_REGEX"
PHONE_REGEX_SETTING = "OMNIHOOKS_LEAD_PHONE_REGEX"

# What `\s` means in a JS regex (Unicode spaces even without the `u` flag), as a class body.
_JS_SPACES = r"\t\n\v\f\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
# The line terminators a JS `.` does not match.
_JS_LINE_ENDS = r"\n\r\u2028\u2029"


class InvalidLeadRegex(ValueError):
    """A lead regex setting that does not compile; the message names the variable."""


@dataclass(frozen=True)
class LeadPatterns:
    """The compiled lead regexes: `finditer` gives what JS `text.match(/…/g)` gives."""

    email: re.Pattern[str]
    phone: re.Pattern[str]


def compile_lead_patterns(email_regex: str, phone_regex: str) -> LeadPatterns:
    """Compile the settings with Rocket.Chat's flags (`gi` for emails, `g` for phones).

    Newer Rocket.Chat servers skip an invalid regex silently; omnihooks refuses it at start-up.
    """
    return LeadPatterns(
        email=_compile_js_regex(email_regex, re.IGNORECASE, EMAIL_REGEX_SETTING),
        phone=_compile_js_regex(phone_regex, 0, PHONE_REGEX_SETTING),
    )


def _compile_js_regex(source: str, flags: int, setting: str) -> re.Pattern[str]:
    # re.ASCII gives JS's (no `u` flag) ASCII-only \d \w \b and case folding; the few
    # constructs that differ beyond that are rewritten by _python_pattern.
    try:
        return re.compile(_python_pattern(source), flags | re.ASCII)
    except re.error as exc:
        raise InvalidLeadRegex(
            f"{setting} is not a valid regular expression ({exc.msg}): {source!r}"
        ) from exc


def _python_pattern(source: str) -> str:
    """The JS regex `source` for Python's re (with re.ASCII): `\\s`/`\\S` keep JS's Unicode
    spaces, `.` stops at JS's line terminators, `$` matches only at the very end."""
    out: list[str] = []
    in_class = False
    chars = iter(source)
    for char in chars:
        if char == "\\":
            out.append(_escape(next(chars, ""), in_class))
        elif in_class:
            in_class = char != "]"
            # a `[` inside a class is a literal in JS; Python would read a nested set
            out.append("\\[" if char == "[" else char)
        elif char == "[":
            in_class = True
            out.append(char)
        elif char == "$":
            out.append(r"\Z")  # Python's `$` also matches before a final newline
        elif char == ".":
            out.append(f"[^{_JS_LINE_ENDS}]")
        else:
            out.append(char)
    return "".join(out)


def _escape(escaped: str, in_class: bool) -> str:
    if escaped == "s":
        return _JS_SPACES if in_class else f"[{_JS_SPACES}]"
    if escaped == "S" and not in_class:
        return f"[^{_JS_SPACES}]"
    return "\\" + escaped  # a lone trailing backslash stays an error, as in JS


def is_lead_candidate(message: JSON) -> bool:
    """Rocket.Chat reads only a visitor's (it has a `token`) unedited, non-system message."""
    return bool(message.get("token")) and not message.get("editedAt") and not message.get("t")


def capture_leads(visitor: JSON, text: str, patterns: LeadPatterns) -> tuple[JSON, bool]:
    """The visitor with the new emails and phones appended, and whether anything matched.

    Rocket.Chat sends `LeadCapture` whenever something matched, even when the visitor already
    had it. The input is never changed: a new dict when something is saved, else the same one.
    """
    emails = _matches(patterns.email, text)
    phones = _matches(patterns.phone, text)
    if not emails and not phones:
        return visitor, False
    # saveGuestEmailPhoneById keeps emails that are not blank and phones that hold a digit,
    # as written (not lower-cased), and $addToSet skips the ones already saved.
    saved_emails = [email for email in emails if email.strip()]
    saved_phones = [phone for phone in phones if any("0" <= c <= "9" for c in phone)]
    updated = dict(visitor)
    if saved_emails:
        known = visitor.get("visitorEmails")
        updated["visitorEmails"] = _add_to_set(known, "address", saved_emails)
    if saved_phones:
        updated["phone"] = _add_to_set(visitor.get("phone"), "phoneNumber", saved_phones)
    return updated, True


def _matches(pattern: re.Pattern[str], text: str) -> list[str]:
    # JS `text.match(re_with_g)` returns the whole matches (not groups); Rocket.Chat drops the
    # empty ones, so an empty pattern captures nothing.
    return [found.group(0) for found in pattern.finditer(text) if found.group(0)]


def _add_to_set(current: Any, key: str, values: list[str]) -> list[Any]:
    entries: list[Any] = list(current) if isinstance(current, list) else []
    known = {e.get(key) for e in entries if isinstance(e, dict)}
    for value in values:
        if value not in known:
            entries.append({key: value})
            known.add(value)
    return entries
