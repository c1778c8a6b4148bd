"""What a Subscription may ask for, checked when it is written (create, update, patch, transaction),
and the row that keeps what it watches with its owner's rights (``subscription_rule``).

- ``criteria``: ``Type?query``, a search of a type this server stores, parsed by the server's own search
  parsing (strict: an unknown or unsupported parameter is a 422 naming it); only parameters that select
  resources (no ``_count``, ``_sort``, ``_include``, …). The writing token must be allowed to search that type.
- ``channel.type``: ``rest-hook`` only; ``channel.endpoint``: an http(s) URL starting with one of the
  prefixes of ``FHIRPORTAL_SUBSCRIPTION_ENDPOINTS`` (and on the same host: no user info, no look-alike
  host) — nothing else is ever contacted; ``channel.payload``: none (a ping) or ``application/fhir+json``;
  ``channel.header``: ``Name: value`` lines, sent with every notification.
- ``status``: ``requested`` (or ``active``, or ``error`` written back by a client) becomes ``active`` once
  accepted, and ``error`` is dropped; ``off`` stays off (no notifications).

The owner is the token that last wrote the Subscription: matches are evaluated with what it may search,
and a payload is the resource as it may read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy import delete, insert

from fhirportal.errors import BadRequest, Forbidden, NotSupported, Unprocessable
from fhirportal.fhir.search_params import RESULT_PARAMETERS, parse_criteria, parse_criterion
from fhirportal.smart.scopes import parse_scopes
from fhirportal.store import clock
from fhirportal.store.records import StoredResource
from fhirportal.store.subscription_schema import subscription_rule

SUBSCRIPTION = "Subscription"
REST_HOOK = "rest-hook"
FHIR_JSON = "application/fhir+json"
PAYLOADS = ("", FHIR_JSON)
ON_STATUSES = ("requested", "active", "error")


@dataclass(frozen=True)
class Criteria:
    resource_type: str
    query: str  # after the '?'
    pairs: tuple[tuple[str, str], ...]


def split_criteria(text) -> tuple[str, str]:
    if not isinstance(text, str) or not text.strip():
        raise Unprocessable("Subscription.criteria is required: a search such as 'Communication?recipient=…'",
                            expression="Subscription.criteria")
    resource_type, _, query = text.strip().partition("?")
    return resource_type, query


def parse(ctx, text) -> Criteria:
    """The criteria checked with the server's own search parsing (strict); 422 naming what is wrong."""
    resource_type, query = split_criteria(text)
    where = "Subscription.criteria"
    if resource_type not in ctx.resource_types or resource_type == SUBSCRIPTION:
        raise Unprocessable(f"Subscription.criteria: '{resource_type}' is not a resource type this server "
                            "notifies about", expression=where)
    pairs = tuple(parse_qsl(query, keep_blank_values=True))
    shaping = sorted({name for name, _ in pairs if name in RESULT_PARAMETERS})
    if shaping:
        raise Unprocessable(f"Subscription.criteria: {', '.join(shaping)} shape search results and select "
                            "nothing; the criteria take selecting parameters only", expression=where)
    try:
        parse_criteria(ctx.search_parameters, resource_type, pairs, strict=True)
    except BadRequest as exc:
        raise Unprocessable(f"Subscription.criteria: {exc.message}", expression=where) from exc
    return Criteria(resource_type, query, pairs)


def criteria_for(ctx, resource_type: str, query: str, fhir_id: str) -> list:
    """The criteria restricted to one resource (``_id=<id>`` added): does this resource match?"""
    pairs = parse_qsl(query, keep_blank_values=True)
    criteria, _ = parse_criteria(ctx.search_parameters, resource_type, pairs, strict=True)
    return [*criteria, parse_criterion(ctx.search_parameters, resource_type, "_id", fhir_id)]


def endpoint_allowed(url: str, prefixes) -> bool:
    """An http(s) URL without user info that starts with an allowed prefix, on the prefix's own host."""
    if not isinstance(url, str) or any(c.isspace() or ord(c) < 32 for c in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return False
    for prefix in prefixes:
        if not prefix or not url.startswith(prefix):
            continue
        allowed = urlsplit(prefix)
        if allowed.hostname and allowed.hostname == parts.hostname and allowed.scheme == parts.scheme:
            return True
    return False


def _channel(ctx, channel) -> dict:
    where = "Subscription.channel"
    if not isinstance(channel, dict):
        raise Unprocessable("Subscription.channel is required", expression=where)
    if channel.get("type") != REST_HOOK:
        raise NotSupported(f"Subscription.channel.type '{channel.get('type')}' is not supported: this server "
                           "notifies through rest-hook only", expression=f"{where}.type")
    endpoint = channel.get("endpoint")
    if not endpoint_allowed(endpoint, ctx.settings.subscription_endpoints):
        raise Unprocessable(f"Subscription.channel.endpoint '{endpoint}' is not an endpoint this server may "
                            "notify (the server's administrator lists the allowed ones)",
                            expression=f"{where}.endpoint")
    payload = channel.get("payload") or ""
    if payload not in PAYLOADS:
        raise NotSupported(f"Subscription.channel.payload '{payload}' is not supported: leave it out (a "
                           f"notification without content) or use {FHIR_JSON}", expression=f"{where}.payload")
    headers = channel.get("header") or []
    if not isinstance(headers, list):
        raise Unprocessable("Subscription.channel.header must be a list", expression=f"{where}.header")
    for index, line in enumerate(headers):
        name, colon, _ = line.partition(":") if isinstance(line, str) else ("", "", "")
        if not colon or not name.strip() or any(c in line for c in "\r\n\x00") or " " in name.strip():
            raise Unprocessable("Subscription.channel.header entries are 'Name: value' lines",
                                expression=f"{where}.header[{index}]")
    return channel


def accept(ctx, body: dict, auth) -> dict:
    """The Subscription as it is stored, or a 4xx saying what cannot be honoured."""
    status = body.get("status")
    if status not in (*ON_STATUSES, "off"):
        raise Unprocessable("Subscription.status must be requested, active, error or off",
                            expression="Subscription.status")
    criteria = parse(ctx, body.get("criteria"))
    if auth.access is not None and not auth.access.permits(criteria.resource_type, "search-type"):
        raise Forbidden(f"The access token may not search {criteria.resource_type}, so it may not subscribe to it",
                        expression="Subscription.criteria")
    _channel(ctx, body.get("channel"))
    accepted = {k: v for k, v in body.items() if k != "error"}
    accepted["status"] = "off" if status == "off" else "active"
    return accepted


def _end(body: dict) -> datetime | None:
    end = body.get("end")
    if not isinstance(end, str):
        return None
    try:
        return clock.ensure_utc(datetime.fromisoformat(end))
    except ValueError:
        return None


def remember(conn, record: StoredResource, auth) -> None:
    """Keep (replace) the Subscription's rule with the writing token's rights, in the write's transaction."""
    body = record.body
    resource_type, query = split_criteria(body.get("criteria"))
    access = auth.access
    forget(conn, record.fhir_id)
    conn.execute(insert(subscription_rule).values(
        subscription_id=record.fhir_id, resource_type=resource_type, criteria=query,
        enabled=body.get("status") != "off", end_at=_end(body),
        scope=access.scopes.text if access is not None else None,
        patient=access.patient if access is not None else None,
        organization=access.organization if access is not None else None,
        client_id=access.client_id if access is not None else None,
        account_id=access.account_id if access is not None else None,
        updated=clock.now()))


def forget(conn, fhir_id: str) -> None:
    conn.execute(delete(subscription_rule).where(subscription_rule.c.subscription_id == fhir_id))


def owner_visibility(ctx, rule, interaction: str):
    """What the Subscription's owner may see for ``interaction`` (None: everything)."""
    if rule.scope is None:
        return None
    return ctx.access_policy.visibility(parse_scopes(rule.scope, ctx.resource_types), rule.patient,
                                        rule.organization, interaction)
