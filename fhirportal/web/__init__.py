"""The practice's patient portal: server-rendered pages over the server's own FHIR API.

The portal is a SMART app like any other — a first-party public client (PKCE) registered at start-up —
that reads the record only through the FHIR API with its user's token (``client.py``), so it shows
exactly what the token lets any app see. It never imports ``fhirportal.store`` (a test enforces it):
the app factory hands it the table of its own browser sessions.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from . import appointments, forms, messages, pages, signin
from .portal import Portal, build

CLIENT_ID = "fhirportal-portal"

__all__ = ["CLIENT_ID", "Portal", "install"]


def install(app: Flask, *, origin: str, base_path: str, session_store, ensure_client: Callable[[], None],
            cancel_hours: int = 24) -> Portal:
    """Register the portal's pages on ``app``. ``session_store``: where its browser sessions live;
    ``ensure_client``: registers the first-party client if it is missing; ``cancel_hours``: the practice's
    cut-off for cancelling an appointment online."""
    wiring = build(app, CLIENT_ID, origin, base_path, session_store, ensure_client, cancel_hours)
    app.extensions["web"] = wiring
    app.register_blueprint(pages.bp)
    app.register_blueprint(signin.bp)
    app.register_blueprint(messages.bp)
    app.register_blueprint(forms.bp)
    app.register_blueprint(appointments.bp)
    return wiring
