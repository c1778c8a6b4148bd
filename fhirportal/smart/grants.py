"""The SMART rules on top of authlib's grants: authorization code (+ PKCE S256 for every client,
+ OpenID Connect), refresh with rotation, and backend services (client credentials signed with
``private_key_jwt``).

Each grant reaches the stores through ``self.server.smart`` (the ``SmartServer`` wired by
``server.py``); the consent decision taken on the authorize page rides on the request as
``request.decision``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode
from authlib.oidc.core.models import AuthorizationCodeMixin
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from fhirportal.store import clock
from fhirportal.store.auth_schema import authorization_code, client_assertion

from .accounts import Account
from .exchange import end_token_transaction, token_transaction
from .keys import ID_TOKEN_LIFETIME
from .scopes import parse_scopes
from .secrets import digest
from .tokens import TokenRecord

CODE_LIFETIME = timedelta(minutes=2)
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
ASSERTION_ALGORITHMS = ["RS384", "ES384"]
MAX_ASSERTION_LIFETIME = 300  # seconds: SMART Backend Services limits exp to five minutes


@dataclass(frozen=True)
class Decision:
    """What the user granted on the consent page: the scope kept and the launch context."""

    account: Account
    scope: str
    context: dict = field(default_factory=dict)
    auth_time: int = 0


@dataclass
class StoredCode(AuthorizationCodeMixin):
    code_hash: str
    client_id: str
    account_id: int | None
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    context: dict
    auth_time: int
    account: Account | None = None  # read with the code, in the same transaction

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_nonce(self):
        return self.nonce

    def get_auth_time(self):
        return self.auth_time

    def get_acr(self):
        return None

    def get_amr(self):
        return None


@dataclass
class RefreshCredential:
    """A stored token as authlib's refresh, revocation and introspection code sees it."""

    record: TokenRecord
    is_refresh: bool

    def check_client(self, client) -> bool:
        return client.get_client_id() == self.record.client_id

    def get_scope(self) -> str:
        return self.record.scope

    def get_expires_in(self) -> int:
        return int((clock.ensure_utc(self.record.expires_at) - clock.ensure_utc(self.record.issued_at)).total_seconds())

    def is_expired(self) -> bool:
        return not (self.record.refresh_active if self.is_refresh else self.record.access_active)

    def is_revoked(self) -> bool:
        return self.record.revoked_at is not None


class S256Only(CodeChallenge):
    """PKCE required of every client (public or confidential), S256 only — never ``plain``."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class SmartAuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def save_authorization_code(self, code, request):
        decision: Decision = request.decision
        data = request.payload.data
        now = clock.now()
        with self.server.smart.database.write(durable=False) as conn:  # a lost code: the user signs in again
            conn.execute(delete(authorization_code).where(authorization_code.c.expires_at < now - CODE_LIFETIME))
            conn.execute(insert(authorization_code).values(
                code_hash=digest(code), client_id=request.client.get_client_id(), account_id=decision.account.id,
                redirect_uri=request.payload.redirect_uri or request.client.get_default_redirect_uri(),
                scope=decision.scope, nonce=data.get("nonce"), code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                context=json.dumps(decision.context, sort_keys=True), auth_time=decision.auth_time or int(time.time()),
                expires_at=now + CODE_LIFETIME))

    def query_authorization_code(self, code, client):
        """The code, used up by this very call: a code is good for one attempt. A replayed code
        revokes every token it produced (RFC 6749 section 4.1.2). The use-up and the new token share
        the request's token transaction (exchange.py)."""
        code_hash = digest(code)
        smart = self.server.smart
        conn = token_transaction(smart.database)
        row = conn.execute(update(authorization_code).where(
            authorization_code.c.code_hash == code_hash, authorization_code.c.used_at.is_(None),
            authorization_code.c.client_id == client.get_client_id(),
        ).values(used_at=clock.now()).returning(*authorization_code.c)).first()
        if row is None:
            end_token_transaction()  # nothing written: a write of its own (durable) follows
            with smart.database.write() as conn:  # a replayed code: revoke what it issued, durably
                replayed = conn.execute(select(authorization_code.c.code_hash).where(
                    authorization_code.c.code_hash == code_hash,
                    authorization_code.c.client_id == client.get_client_id())).first()
                if replayed is not None:
                    smart.tokens.revoke_code(conn, code_hash)
            return None
        account = smart.accounts.load(conn, row.account_id) if row.account_id else None
        if clock.ensure_utc(row.expires_at) <= clock.now():
            return None
        return StoredCode(row.code_hash, row.client_id, row.account_id, row.redirect_uri, row.scope, row.nonce,
                          row.code_challenge, row.code_challenge_method, json.loads(row.context), row.auth_time,
                          account)

    def delete_authorization_code(self, authorization_code):
        pass  # already used up by query_authorization_code

    def authenticate_user(self, authorization_code):
        account = authorization_code.account
        return account if account is not None and account.active else None


class SmartRefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every refresh token is good once

    def authenticate_refresh_token(self, refresh_token):
        tokens = self.server.smart.tokens
        with self.server.smart.database.write() as conn:
            record = tokens.find_refresh(conn, refresh_token)
            if record is None:
                return None
            if record.refreshed_at is not None and record.revoked_at is None:
                tokens.revoke_grant(conn, record.grant_id)  # a rotated token came back: stolen, end the grant
                return None
        return RefreshCredential(record, is_refresh=True) if record.refresh_active else None

    def authenticate_user(self, refresh_token):
        account = self.server.smart.accounts.get(refresh_token.record.account_id)
        return account if account is not None and account.active else None

    def revoke_old_credential(self, refresh_token):
        with self.server.smart.database.write(durable=False) as conn:
            self.server.smart.tokens.mark_refreshed(conn, refresh_token.record)


class BackendServicesGrant(grants.ClientCredentialsGrant):
    """SMART Backend Services: ``client_credentials`` authenticated by a signed JWT, system/ scopes."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["private_key_jwt"]


class PrivateKeyJwt(JWTBearerClientAssertion):
    """``private_key_jwt`` client authentication (RFC 7523) as SMART profiles it: RS384 or ES384,
    the key found by ``kid`` in the app's JWKS, ``exp`` at most five minutes ahead, ``jti`` once."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, token_url: str, database):
        super().__init__(validate_jti=True, leeway=30)
        self._token_url = token_url
        self.database = database
        self._fresh = threading.local()  # this request's assertion failed with the cached keys

    def get_audiences(self):
        return [self._token_url]

    def __call__(self, query_client, request):
        try:
            return super().__call__(query_client, request)
        except InvalidClientError:
            if not getattr(self._fresh, "unverified", False):
                raise
        # the signature did not verify: the app may have rotated its keys since its jwks_uri was fetched;
        # once more with them fetched again (at most every JWKS_MIN_REFETCH seconds per URI)
        self._fresh.keys = True
        try:
            return super().__call__(query_client, request)
        finally:
            self._fresh.keys = self._fresh.unverified = False

    def resolve_client_public_key(self, client):
        try:
            return client.public_keys(fresh=getattr(self._fresh, "keys", False))
        except Exception as exc:  # unreachable jwks_uri, malformed JWKS
            raise InvalidClientError(description=f"The client's keys could not be loaded: {exc}") from exc

    def process_assertion_claims(self, assertion, resolve_key):
        self._fresh.unverified = False
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except (JoseError, ValueError) as exc:
            self._fresh.unverified = True
            raise InvalidClientError(description=f"The client assertion is not valid: {exc}") from exc
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims):
        super().verify_claims(claims)
        if not isinstance(claims.get("exp"), int | float) or claims["exp"] > time.time() + MAX_ASSERTION_LIFETIME \
                + self.leeway:
            raise InvalidClientError(description="The client assertion's exp must be at most 5 minutes ahead")

    def validate_jti(self, claims, jti):
        expires = datetime.fromtimestamp(float(claims["exp"]), UTC)
        try:
            with self.database.write() as conn:
                conn.execute(delete(client_assertion).where(client_assertion.c.expires_at < clock.now()))
                conn.execute(insert(client_assertion).values(
                    client_id=str(claims["iss"]), jti=str(jti)[:256], expires_at=expires))
        except IntegrityError:
            return False
        return True


class SmartOpenIDCode(OpenIDCode):
    """id_tokens signed RS256 with the server key (``kid`` in the header), ``aud`` = client_id,
    ``fhirUser`` when the app asked for it."""

    def __init__(self, issuer: str, keys, base_url: str):
        super().__init__(require_nonce=False)
        self.issuer = issuer
        self.keys = keys
        self.base_url = base_url

    def exists_nonce(self, nonce, request):
        with self.keys.database.read() as conn:
            found = conn.execute(select(authorization_code.c.code_hash).where(
                authorization_code.c.client_id == request.payload.client_id,
                authorization_code.c.nonce == nonce).limit(1)).first()
        return found is not None

    def resolve_client_private_key(self, client):
        return self.keys.current

    def get_client_algorithm(self, client):
        return "RS256"

    def get_encode_header(self, client):
        return {"alg": "RS256", "kid": self.keys.current.kid, "typ": "JWT"}

    def get_client_claims(self, client):
        exp = int(time.time() + ID_TOKEN_LIFETIME.total_seconds())  # the key rotation keeps a key this long
        return {"iss": self.issuer, "aud": client.get_client_id(), "exp": exp}

    def generate_user_info(self, user: Account, scope):
        info = {"sub": user.subject}
        if user.fhir_user and "fhirUser" in scope.split():
            info["fhirUser"] = f"{self.base_url}/{user.fhir_user}"
        if "profile" in scope.split():
            info["preferred_username"] = user.username
        return info


def backend_scope(requested: str | None, resource_types) -> str:
    """The system/ scopes a backend client may hold (unknown and non-system scopes dropped)."""
    scopes = parse_scopes(requested, resource_types)
    kept = [s.text for s in scopes.resource_scopes if s.context == "system"]
    if not kept:
        raise InvalidScopeError("Backend services need at least one system/ scope, e.g. system/*.rs")
    return " ".join(kept)
