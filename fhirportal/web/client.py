"""The portal's way to the server: HTTP requests to this very application's FHIR API and OAuth
endpoints, exactly as any SMART app sends them (a bearer token on every FHIR call, the token
endpoint for codes and refreshes, RFC 7009 revocation) — dispatched through the application's WSGI
stack in the same process instead of over a socket, so nothing waits on a worker of its own.

Everything a page shows comes through here: the portal sees what the token lets any app see.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from werkzeug.test import EnvironBuilder, run_wsgi_app

FHIR_JSON = "application/fhir+json"
MAX_PAGES = 40  # a search is followed through at most this many pages


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class ApiError(Exception):
    """The API said no: ``status`` and what its OperationOutcome (or OAuth error) said."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class TokenRejected(ApiError):
    """401: the access token is unknown, expired or revoked (signed out elsewhere, password reset)."""


class InProcess:
    """Requests to a WSGI application (this server) under the server's public origin."""

    def __init__(self, application: Callable, origin: str):
        self.application = application
        self.origin = origin

    def request(self, method: str, path: str, *, query: Iterable[tuple[str, str]] | str | None = None,
                form: dict | None = None, headers: dict | None = None, body: bytes | None = None) -> Answer:
        query_string = query if isinstance(query, str) or query is None else urlencode(list(query))
        builder = EnvironBuilder(path=path, base_url=self.origin, method=method, query_string=query_string,
                                 data=form if form is not None else body, headers=headers or {})
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        environ["REMOTE_ADDR"] = "127.0.0.1"
        app_iter, status, response_headers = run_wsgi_app(self.application, environ, buffered=True)
        try:
            body = b"".join(app_iter)
        finally:
            close = getattr(app_iter, "close", None)
            if close:
                close()
        return Answer(int(status.split()[0]), dict(response_headers), body)


def _problem(answer: Answer) -> str:
    body = answer.json()
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        return "; ".join(i.get("diagnostics", i.get("code", "")) for i in body.get("issue", []))
    if isinstance(body, dict) and body.get("error"):
        return f"{body['error']}: {body.get('error_description', '')}"
    return f"HTTP {answer.status}"


class FhirApi:
    """The FHIR API with one access token."""

    def __init__(self, transport: InProcess, base_path: str, access_token: str):
        self.transport = transport
        self.base_path = base_path
        self.access_token = access_token

    def get(self, path: str, query: Iterable[tuple[str, str]] | str | None = None) -> dict:
        answer = self.transport.request("GET", f"{self.base_path}/{path.lstrip('/')}", query=query, headers={
            "Authorization": f"Bearer {self.access_token}", "Accept": FHIR_JSON})
        if answer.status == 401:
            raise TokenRejected(401, _problem(answer))
        if answer.status != 200:
            raise ApiError(answer.status, _problem(answer))
        return answer.json()

    def send(self, method: str, path: str, body, content_type: str = FHIR_JSON, *, version: str | None = None) -> dict:
        """A write (``POST``, ``PUT``, ``PATCH`` with a JSON Patch; ``version``: the ``meta.versionId`` it
        changes, sent as ``If-Match``): the resource as stored; ApiError with what the OperationOutcome said."""
        headers = {"Authorization": f"Bearer {self.access_token}", "Accept": FHIR_JSON, "Content-Type": content_type,
                   "Prefer": "return=representation"}
        if version:
            headers["If-Match"] = f'W/"{version}"'
        answer = self.transport.request(method, f"{self.base_path}/{path.lstrip('/')}", body=json.dumps(body).encode(),
                                        headers=headers)
        if answer.status == 401:
            raise TokenRejected(401, _problem(answer))
        if answer.status not in (200, 201):
            raise ApiError(answer.status, _problem(answer))
        return answer.json()

    def create(self, resource: dict) -> dict:
        return self.send("POST", resource["resourceType"], resource)

    def update(self, resource: dict) -> dict:
        return self.send("PUT", f"{resource['resourceType']}/{resource['id']}", resource)

    def patch(self, resource_type: str, fhir_id: str, operations: list[dict]) -> dict:
        return self.send("PATCH", f"{resource_type}/{fhir_id}", operations, "application/json-patch+json")

    def write(self, method: str, path: str, resource: dict, *, version: str | None = None) -> dict:
        return self.send(method, path, resource, version=version)

    def read(self, resource_type: str, fhir_id: str) -> dict | None:
        try:
            return self.get(f"{resource_type}/{fhir_id}")
        except TokenRejected:
            raise
        except ApiError as error:
            if error.status in (403, 404, 410):
                return None
            raise

    def pages(self, path: str, query: Iterable[tuple[str, str]], *, max_pages: int = MAX_PAGES) -> Iterable[dict]:
        """Every page of a search (or $everything), following ``next`` links."""
        bundle = self.get(path, list(query))
        for _ in range(max_pages):
            yield bundle
            following = next((link["url"] for link in bundle.get("link", []) if link.get("relation") == "next"), None)
            if not following:
                return
            parts = urlsplit(following)
            bundle = self.get(parts.path.removeprefix(self.base_path), parts.query)

    def search(self, resource_type: str, query: Iterable[tuple[str, str]], *, every_page: bool = False,
               included: bool = False) -> list[dict]:
        """The matches of a search (first page, or ``every_page``); ``included``: the included resources too."""
        found = []
        for bundle in self.pages(resource_type, query, max_pages=MAX_PAGES if every_page else 1):
            found += [e["resource"] for e in bundle.get("entry", [])
                      if included or e.get("search", {}).get("mode", "match") == "match"]
        return found


class OAuth:
    """The authorization server's token and revocation endpoints, as a public client (PKCE)."""

    def __init__(self, transport: InProcess, client_id: str, redirect_uri: str):
        self.transport = transport
        self.client_id = client_id
        self.redirect_uri = redirect_uri

    def _token(self, form: dict) -> dict:
        answer = self.transport.request("POST", "/auth/token", form={**form, "client_id": self.client_id})
        if answer.status != 200:
            raise ApiError(answer.status, _problem(answer))
        return answer.json()

    def exchange(self, code: str, verifier: str) -> dict:
        return self._token({"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
                            "code_verifier": verifier})

    def refresh(self, refresh_token: str) -> dict:
        return self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def revoke(self, token: str, hint: str) -> None:
        self.transport.request("POST", "/auth/revoke", form={"token": token, "token_type_hint": hint,
                                                             "client_id": self.client_id})
