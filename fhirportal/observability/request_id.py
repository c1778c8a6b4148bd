"""Every HTTP request gets an id: the ``X-Request-ID`` a trusted proxy sent (when it is 1–64 characters of
``[A-Za-z0-9._-]``), otherwise a new one (uuid4 hex). It is answered in ``X-Request-ID`` on every response
(errors and 401s too), put on the request's log lines (``logs.RequestIdFilter``) and in its access-log row."""

from __future__ import annotations

import re
import uuid

from flask import Flask, g, has_request_context, request

HEADER = "X-Request-ID"
VALID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def new_id() -> str:
    return uuid.uuid4().hex


def chosen(incoming: str | None, trusted: bool) -> str:
    """The id of a request that came with ``incoming`` (None: no header)."""
    if trusted and incoming and VALID.fullmatch(incoming):
        return incoming
    return new_id()


def current() -> str | None:
    """The id of the request being answered (None outside a request)."""
    if not has_request_context():
        return None
    return g.get("request_id")


def install(app: Flask, trusted: bool) -> None:
    """Register the hooks; call before any other ``before_request`` so that everything after sees the id."""

    @app.before_request
    def _assign_request_id():
        g.request_id = chosen(request.headers.get(HEADER), trusted)

    @app.after_request
    def _answer_request_id(response):
        if "request_id" not in g:  # a before_request ahead of this one answered
            g.request_id = chosen(request.headers.get(HEADER), trusted)
        response.headers[HEADER] = g.request_id
        return response
