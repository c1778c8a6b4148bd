"""Content negotiation: ``_format``/``Accept`` for responses, ``Content-Type`` for request bodies,
``_pretty``, and rendering a FhirResponse into a Flask response.

JSON and XML (``fhir/xml``) are both spoken; JSON is the default. A resource body in either format
reaches the interactions in its JSON form (``resource_body``).
"""

from __future__ import annotations

import json
import re

from flask import Request, Response, g, request

from fhirportal.errors import (
    BadRequest,
    NotAcceptable,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
    UriTooLong,
)

from . import jsontext, xml
from .response import FhirResponse

FHIR_JSON = "application/fhir+json"
JSON = "application/json"
JSON_PATCH = "application/json-patch+json"
FHIR_XML = "application/fhir+xml"
XML = "application/xml"

_FORMAT_ALIASES = {
    "json": FHIR_JSON,
    FHIR_JSON: FHIR_JSON,
    JSON: JSON,
    "application/json+fhir": FHIR_JSON,  # DSTU2-era spelling still sent by some clients
    "text/json": JSON,
    "xml": FHIR_XML,
    FHIR_XML: FHIR_XML,
    XML: XML,
    "application/xml+fhir": FHIR_XML,
    "text/xml": XML,
}
XML_MEDIA_TYPES = frozenset({FHIR_XML, XML})
JSON_BODY_TYPES = (FHIR_JSON, JSON, "application/json+fhir")
XML_BODY_TYPES = (FHIR_XML, XML, "application/xml+fhir", "text/xml")
_SPOKEN = f"{FHIR_JSON}, {JSON}, {FHIR_XML} or {XML}"


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def response_format(request: Request) -> str:
    """The media type to answer with; 406 if the client accepts nothing we produce."""
    requested = request.args.get("_format")
    if requested:
        media = _media_type(requested.replace(" ", "+"))  # '+' arrives as space when not encoded
        if media in _FORMAT_ALIASES:
            return _FORMAT_ALIASES[media]
        raise NotAcceptable(f"_format '{requested}' is not supported; this server speaks JSON and XML "
                            f"({_SPOKEN}; json, xml)", expression="_format")
    accept = request.headers.get("Accept", "")
    if not accept.strip():
        return FHIR_JSON
    best, best_quality = None, -1.0
    for position, item in enumerate(accept.split(",")):
        media, *params = [p.strip() for p in item.split(";")]
        media = media.lower()
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        candidate = _FORMAT_ALIASES.get(media) or (FHIR_JSON if media in ("*/*", "application/*") else None)
        if candidate and (quality > best_quality or (quality == best_quality and best is None)):
            best, best_quality = candidate, quality - position * 1e-6
    if best is None:
        raise NotAcceptable(f"None of the accepted media types ({accept}) can be produced; this server "
                            f"speaks {_SPOKEN}")
    return best


def is_pretty(request: Request) -> bool:
    return request.args.get("_pretty", "false").lower() == "true"


def _error_format() -> str:
    """The media type of an error answer: the negotiated one, else what the request asks for if that can be
    produced (an error may come before negotiation, or be the 406 itself), else JSON."""
    negotiated = g.get("fhir_media_type")
    if negotiated:
        return negotiated
    try:
        return response_format(request)
    except NotAcceptable:
        return FHIR_JSON


def render_error(result: FhirResponse) -> Response:
    """An error's OperationOutcome (the app's error handlers), in the format the current request asked for."""
    return render(result, _error_format(), is_pretty(request))


def render(result: FhirResponse, media_type: str = FHIR_JSON, pretty: bool = False) -> Response:
    body = result.body
    if body is None:
        payload = b""
    elif media_type in XML_MEDIA_TYPES:
        payload = _utf8(xml.write(body, pretty))
    elif isinstance(body, str) and not pretty:
        payload = _utf8(body)  # stored JSON text, served as stored
    elif not pretty:
        payload = _utf8(jsontext.dumps(body))
    else:
        data = json.loads(body) if isinstance(body, str) else jsontext.to_plain(body)
        payload = _utf8(json.dumps(data, ensure_ascii=False, indent=2))
    response = Response(payload, status=result.status)
    if body is not None:
        response.headers["Content-Type"] = f"{media_type}; charset=utf-8"
    for name, value in result.headers.items():
        response.headers[name] = value
    return response


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _utf8(text: str) -> bytes:
    """UTF-8 of ``text``; a lone surrogate (a client's ``\\ud800`` echoed in an error message) becomes U+FFFD."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _LONE_SURROGATE.sub("\ufffd", text).encode()


def require_body_type(request: Request, allowed: tuple[str, ...]) -> None:
    media = _media_type(request.headers.get("Content-Type", ""))
    if media not in allowed:
        shown = media or "none"
        raise UnsupportedMediaType(f"Content-Type {shown} is not supported here; send {' or '.join(allowed)}")


def require_short_query(request: Request, maximum: int) -> None:
    """414 when the query string is longer than ``maximum`` bytes (``FHIRPORTAL_MAX_QUERY_BYTES``)."""
    length = len(request.query_string)
    if length > maximum:
        raise UriTooLong(f"The query string is {length} bytes long; this server takes at most {maximum} "
                         f"(the query length limit). Send long searches as POST [type]/_search")


def small_form(request: Request, maximum: int):
    """The form body (``application/x-www-form-urlencoded``) of at most ``maximum`` bytes, else 413."""
    length = request.content_length
    if length is None or length <= maximum:
        length = len(request.get_data(cache=True))  # a chunked body has no Content-Length
    if length > maximum:
        raise PayloadTooLarge(f"The form body is {length} bytes long; this server takes at most {maximum} "
                              f"for a search (the query length limit)")
    return request.form


def resource_body(request: Request):
    """The FHIR resource in the request body, JSON or XML by its Content-Type (415 for others), in its
    JSON form; 413 past the size limit, 400 for a body that is not JSON or XML, 422 for XML that is not
    FHIR XML (an unknown element, elements out of order, ...)."""
    if _media_type(request.headers.get("Content-Type", "")) not in XML_BODY_TYPES:
        return json_body(request, JSON_BODY_TYPES + XML_BODY_TYPES)
    try:
        return xml.read(_raw_body(request), max_depth=MAX_DEPTH)
    except xml.XmlProblem as problem:
        error = BadRequest if problem.syntax else Unprocessable
        raise error(str(problem), expression=problem.expression) from None


def _raw_body(request: Request) -> bytes:
    raw = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
    if not raw.strip():
        raise BadRequest("The request has no body")
    return raw


def json_body(request: Request, allowed: tuple[str, ...] = JSON_BODY_TYPES):
    """The request body parsed as JSON, after the Content-Type check (415) and size limit (413).
    ``allowed`` may name more types than JSON ones (for the 415's message) when the caller reads those."""
    require_body_type(request, allowed)
    raw = _raw_body(request)
    if b"\\u0000" in raw or b"\x00" in raw:
        raise BadRequest("The body contains a NUL character, which FHIR strings may not hold")
    try:
        document = json.loads(raw)
    except RecursionError as exc:
        raise BadRequest(f"The body nests deeper than {MAX_DEPTH} levels") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}") from exc
    if isinstance(document, dict | list) and _deeper_than(document, MAX_DEPTH):
        raise BadRequest(f"The body nests deeper than {MAX_DEPTH} levels")
    return document


MAX_DEPTH = 64  # no FHIR resource needs more; deeper documents only serve to exhaust the stack


def _deeper_than(node, levels: int) -> bool:
    """Whether parsed JSON ``node`` (a dict or list) nests more than ``levels`` levels (itself
    counting as one). The recursion stops ``levels`` deep, so it cannot exhaust the stack."""
    if levels == 0:
        return True
    levels -= 1
    for child in node.values() if type(node) is dict else node:
        if (type(child) is dict or type(child) is list) and _deeper_than(child, levels):
            return True
    return False
