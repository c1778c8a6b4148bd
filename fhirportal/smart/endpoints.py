"""Token revocation (RFC 7009), introspection (RFC 7662) and dynamic client registration (RFC 7591)."""

from __future__ import annotations

from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint
from authlib.oauth2.rfc7591.errors import InvalidClientMetadataError
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from .discovery import registration_metadata
from .grants import CLIENT_AUTH_METHODS, RefreshCredential


def _query_token(smart, token_string: str, hint: str | None) -> RefreshCredential | None:
    with smart.database.read() as conn:
        if hint != "refresh_token":
            record = smart.tokens.find_access(conn, token_string)
            if record is not None:
                return RefreshCredential(record, is_refresh=False)
        record = smart.tokens.find_refresh(conn, token_string)
        if record is None and hint == "refresh_token":
            record = smart.tokens.find_access(conn, token_string)
            return RefreshCredential(record, is_refresh=False) if record else None
    return RefreshCredential(record, is_refresh=True) if record else None


class SmartRevocation(RevocationEndpoint):
    """Revoking an access or a refresh token ends the whole authorization (every rotation of it)."""

    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def query_token(self, token_string, token_type_hint):
        return _query_token(self.server.smart, token_string, token_type_hint)

    def revoke_token(self, token, request):
        with self.server.smart.database.write() as conn:
            self.server.smart.tokens.revoke_grant(conn, token.record.grant_id)


class SmartIntrospection(IntrospectionEndpoint):
    """Confidential clients (and resource servers registered as such) may introspect any token;
    public clients only their own."""

    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def query_token(self, token_string, token_type_hint):
        return _query_token(self.server.smart, token_string, token_type_hint)

    def check_permission(self, token, client, request):
        return not client.is_public or token.check_client(client)

    def introspect_token(self, token):
        smart = self.server.smart
        record = token.record
        payload = {
            "active": True,
            "scope": record.scope,
            "client_id": record.client_id,
            "token_type": "refresh_token" if token.is_refresh else "Bearer",
            "exp": int((record.refresh_expires_at if token.is_refresh else record.expires_at).timestamp()),
            "iat": int(record.issued_at.timestamp()),
            "iss": smart.issuer,
        }
        if record.account_id is not None:
            account = smart.accounts.get(record.account_id)
            if account is None or not account.active:
                return {"active": False}
            payload["sub"] = account.subject
            payload["username"] = account.username
            if account.fhir_user:
                payload["fhirUser"] = f"{smart.fhir_base}/{account.fhir_user}"
        for key in ("patient", "encounter"):
            if record.context.get(key):
                payload[key] = record.context[key]
        return payload


class SmartRegistration(ClientRegistrationEndpoint):
    """Open dynamic registration for public, symmetric and asymmetric apps (RFC 7591)."""

    def authenticate_token(self, request):
        return True  # open registration; the patient still consents to every app at sign-in

    def get_server_metadata(self):
        return registration_metadata()

    def extract_client_metadata(self, request):
        """authlib's claim checks raise plain KeyError / TypeError / ValueError on some malformed values (a
        ``jwks`` without ``keys``, a list where an object belongs): the client's mistake, so
        ``invalid_client_metadata`` (400), not a 500."""
        try:
            return super().extract_client_metadata(request)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidClientMetadataError(f"Malformed client metadata ({type(exc).__name__}: {exc})"[:300]) from exc

    def generate_client_info(self, request):
        info = super().generate_client_info(request)
        method = request.payload.data.get("token_endpoint_auth_method", "client_secret_basic")
        if not str(method).startswith("client_secret"):
            info.pop("client_secret", None)
            info.pop("client_secret_expires_at", None)
        return info

    def save_client(self, client_info, client_metadata, request):
        try:
            client, _ = self.server.smart.clients.register(
                client_metadata, client_id=client_info["client_id"], client_secret=client_info.get("client_secret"))
        except ValueError as exc:
            raise InvalidClientMetadataError(str(exc)) from exc
        return client
