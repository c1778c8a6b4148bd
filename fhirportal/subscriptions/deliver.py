"""One rest-hook notification: a POST to the Subscription's ``channel.endpoint`` with its
``channel.header`` lines, and either no body (a ping, ``channel.payload`` absent) or the resource as
``application/fhir+json``. Redirects are not followed (the endpoint was checked, where it points to was
not); any 2xx answer is a delivery."""

from __future__ import annotations

from dataclasses import dataclass

import requests

from .rules import FHIR_JSON

USER_AGENT = "fhirportal-subscriptions"


@dataclass(frozen=True)
class Notification:
    endpoint: str
    headers: tuple[str, ...]  # "Name: value"
    payload: str | None  # the resource's JSON text, or None for a ping
    subscription_id: str


def _headers(notification: Notification) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT}
    if notification.payload is not None:
        headers["Content-Type"] = f"{FHIR_JSON}; charset=utf-8"
    for line in notification.headers:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    return headers


def post(notification: Notification, timeout: float) -> str | None:
    """Deliver; None on success, else why not (never the endpoint's answer body, nor its URL's query)."""
    body = notification.payload.encode("utf-8") if notification.payload is not None else b""
    try:
        answer = requests.post(notification.endpoint, data=body, headers=_headers(notification), timeout=timeout,
                               allow_redirects=False)
    except requests.Timeout:
        return f"the endpoint did not answer within {timeout:g} s"
    except requests.RequestException as exc:
        return f"the endpoint could not be reached ({type(exc).__name__})"
    if 200 <= answer.status_code < 300:
        return None
    return f"the endpoint answered HTTP {answer.status_code}" + (f" {answer.reason}" if answer.reason else "")
