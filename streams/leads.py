"""Lead capture as Rocket.Chat does it: emails and phones found in visitor messages are saved
on the visitor. Pure functions: no Kafka, no HTTP."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from streams.settings import DEFAULT_LEAD_EMAIL_REGEX, DEFAULT_LEAD_PHONE_REGEX

JSON = dict[str, Any]

__all__ = [
    "DEFAULT_LEAD_EMAIL_REGEX",
    "DEFAULT_LEAD_PHONE_REGEX",
    "InvalidLeadRegex",
    "LeadPatterns",
    "capture_leads",
    "compile_lead_patterns",
    "is_lead_candidate",
]


class InvalidLeadRegex(ValueError):
    """A lead regex setting that does not compile; the message names the variable."""


@dataclass(frozen=True)
class LeadPatterns:
    email: re.Pattern[str]
    phone: re.Pattern[str]


def compile_lead_patterns(email_regex: str, phone_regex: str) -> LeadPatterns:
    """Rocket.Chat's flags: `gi` for emails, `g` for phones (Python finds all either way)."""
    try:
        email = re.compile(email_regex, re.IGNORECASE)
    except re.error as exc:
        raise InvalidLeadRegex(f"OMNIHOOKS_LEAD_EMAIL_REGEX does not compile: {exc}") from None
    try:
        phone = re.compile(phone_regex)
    except re.error as exc:
        raise InvalidLeadRegex(f"OMNIHOOKS_LEAD_PHONE_REGEX does not compile: {exc}") from None
    return LeadPatterns(email, phone)


def is_lead_candidate(message: JSON) -> bool:
    """Only a visitor's (it has a token) unedited, non-system message is read for leads."""
    return bool(message.get("token")) and not message.get("editedAt") and not message.get("t")


def _matches(pattern: re.Pattern[str], text: str) -> list[str]:
    # JS String.match with the g flag returns whole matches, not groups.
    return [m.group(0) for m in pattern.finditer(text) if m.group(0)]


def capture_leads(visitor: JSON, text: str, patterns: LeadPatterns) -> tuple[JSON, bool]:
    """The visitor with new emails/phones appended (never mutated in place), and whether
    anything matched (Rocket.Chat then sends LeadCapture)."""
    emails = _matches(patterns.email, text)
    phones = [p for p in _matches(patterns.phone, text) if any(c.isdigit() for c in p)]
    if not emails and not phones:
        return visitor, False
    updated = dict(visitor)
    # $addToSet semantics: kept as found, no duplicate entries.
    updated["visitorEmails"] = _add_to_set(visitor.get("visitorEmails"), "address", emails)
    if phones:
        updated["phone"] = _add_to_set(visitor.get("phone"), "phoneNumber", phones)
    if not emails and "visitorEmails" not in visitor:
        del updated["visitorEmails"]
    return updated, True


def _add_to_set(current: Any, key: str, values: list[str]) -> list[JSON]:
    entries: list[JSON] = [dict(e) for e in current] if isinstance(current, list) else []
    known = {e.get(key) for e in entries if isinstance(e, dict)}
    for value in values:
        if value not in known:
            entries.append({key: value})
            known.add(value)
    return entries
