"""Writes that claim a profile (``meta.profile``) are checked against it: a known profile (US Core 6.1.0's)
through ``fhir/profiles``, with required bindings answered by the terminology service. A profile the
server does not know is accepted unchecked on writes (FHIR servers may), and refused by ``$validate``
when asked for explicitly."""

from __future__ import annotations

import functools

from fhirportal.errors import FhirError, Issue

from .profiles import registry as profile_registry
from .terminology.service import terminology


@functools.lru_cache(maxsize=4096)
def _codes(valueset_url: str) -> frozenset[str] | None:
    """Every code of a value set that expands here (any system); None if it does not."""
    try:
        expansion = terminology().expand(valueset_url).get("expansion", {})
    except FhirError:
        return None
    return frozenset(c.get("code") for c in expansion.get("contains", []) if c.get("code"))


def contains(valueset_url: str, system: str | None, code: str) -> bool | None:
    """Whether (system, code) is in the value set (a plain ``code`` element has no system: then any of the
    value set's systems); None when this server cannot tell."""
    if system is None:
        codes = _codes(valueset_url)
        return None if codes is None else code in codes
    return terminology().contains(valueset_url, system, code)


def known(url: str) -> bool:
    return url.partition("|")[0] in profile_registry().definitions


def issues(body: dict, profiles: list[str] | None = None) -> list[Issue]:
    """The errors of ``body`` against each known profile it claims, and each of ``profiles`` (which must be
    known: ``UnknownProfile``, a 400, otherwise)."""
    meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
    claimed = [p for p in meta.get("profile", []) if isinstance(p, str) and known(p)]
    found: list[Issue] = []
    for url in dict.fromkeys([*claimed, *(profiles or [])]):
        found += [issue for issue in profile_registry().validate(body, url, contains) if issue.severity == "error"]
    return found
