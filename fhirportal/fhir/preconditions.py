"""HTTP preconditions: ETags and the If-* headers."""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime

from fhirportal.errors import BadRequest
from fhirportal.store.clock import ensure_utc
from fhirportal.store.records import StoredResource

_ETAG = re.compile(r'^\s*(?:W/)?"?(\d+)"?\s*$')


def etag(version_id: int) -> str:
    return f'W/"{version_id}"'


def http_date(moment: datetime) -> str:
    return format_datetime(ensure_utc(moment), usegmt=True)


def parse_etag(value: str | None, header: str = "If-Match") -> int | None:
    if value is None or value.strip() == "":
        return None
    match = _ETAG.match(value)
    if not match:
        raise BadRequest(f"{header} must be a version ETag such as W/\"3\", got {value!r}", expression=header)
    return int(match.group(1))


def not_modified(record: StoredResource, if_none_match: str | None, if_modified_since: str | None) -> bool:
    """True when a conditional read may answer 304."""
    if if_none_match:
        tags = [t.strip() for t in if_none_match.split(",")]
        return "*" in tags or any(_ETAG.match(t) and int(_ETAG.match(t).group(1)) == record.version_id
                                  for t in tags)
    if if_modified_since:
        try:
            since = ensure_utc(parsedate_to_datetime(if_modified_since))
        except (TypeError, ValueError):
            return False  # an unparseable date is ignored, as HTTP says
        return record.last_updated.replace(microsecond=0) <= since
    return False


def version_headers(record: StoredResource, base_url: str, *, location: bool = False) -> dict[str, str]:
    headers = {"ETag": etag(record.version_id), "Last-Modified": http_date(record.last_updated)}
    if location:
        headers["Location"] = f"{base_url}/{record.resource_type}/{record.fhir_id}/_history/{record.version_id}"
    return headers
