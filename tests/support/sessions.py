"""The session core wired from `Settings`, as the worker wires it (streams/agents/sessions.py)."""

from __future__ import annotations

from collections.abc import Callable

from streams.core.endpoints import EndpointDirectory
from streams.core.leads import LeadPatterns
from streams.core.sessions import SessionProcessor, SessionStore
from streams.settings import Settings


def processor_for(
    settings: Settings,
    store: SessionStore,
    leads: LeadPatterns,
    clock: Callable[[], float],
    directory: EndpointDirectory | None = None,
) -> SessionProcessor:
    return SessionProcessor(
        settings.session_policy(), store, leads, clock, directory or settings.endpoint_directory()
    )
