"""The authorization server: authlib's Flask AuthorizationServer wired to fhirportal's stores.

All the authlib glue lives here; the SMART rules live in ``grants.py``, ``endpoints.py`` and
``scopes.py``. ``SmartServer`` is what the routes and grants reach the stores through.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from urllib.parse import urlsplit

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import OAuth2Request

from fhirportal.settings import Settings
from fhirportal.store.database import Database

from .accounts import AccountStore
from .clients import ClientStore
from .endpoints import SmartIntrospection, SmartRegistration, SmartRevocation
from .exchange import end_token_transaction, token_transaction
from .grants import (
    BackendServicesGrant,
    PrivateKeyJwt,
    S256Only,
    SmartAuthorizationCodeGrant,
    SmartOpenIDCode,
    SmartRefreshTokenGrant,
    backend_scope,
)
from .keys import SigningKeys
from .launches import LaunchStore
from .rate_limits import RateLimits
from .secrets import new_secret
from .tokens import ACCESS_TOKEN_LIFETIME, TokenStore

REFRESH_SCOPES = frozenset({"offline_access", "online_access"})


@dataclass
class SmartServer:
    settings: Settings
    database: Database
    tokens: TokenStore
    resource_types: frozenset[str]
    patient_types: frozenset[str] = frozenset()  # what a patient/ token can see: consent offers these by kind
    first_party: frozenset[str] = frozenset()  # the practice's own apps (the portal): no consent page

    @cached_property
    def accounts(self) -> AccountStore:
        return AccountStore(self.database)

    @cached_property
    def clients(self) -> ClientStore:
        return ClientStore(self.database)

    @cached_property
    def rate_limits(self) -> RateLimits:
        return RateLimits(self.database, {"token": self.settings.rate_limit_token,
                                          "register": self.settings.rate_limit_register,
                                          "login": self.settings.rate_limit_login})

    @cached_property
    def keys(self) -> SigningKeys:
        return SigningKeys(self.database)

    @cached_property
    def launches(self) -> LaunchStore:
        return LaunchStore(self.database)

    # ------------------------------------------------------------------ URLs
    @property
    def fhir_base(self) -> str:
        return self.settings.base_url

    @property
    def issuer(self) -> str:
        """The OpenID issuer: the FHIR base, so ``{iss}/.well-known/openid-configuration`` is served there."""
        return self.settings.base_url

    @property
    def origin(self) -> str:
        parts = urlsplit(self.settings.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    def url(self, path: str) -> str:
        return self.origin + path

    @property
    def is_https(self) -> bool:
        return self.origin.startswith("https://")


class SmartAuthorizationServer(AuthorizationServer):
    def create_oauth2_request(self, request):
        """Use a request the authorize page already built (its parameters from the query string
        only, so the consent form's own ``scope`` checkboxes are not read as the app's)."""
        if isinstance(request, OAuth2Request):
            return request
        return super().create_oauth2_request(request)


def _generate_token(smart: SmartServer):
    def generate(grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True):
        if grant_type == "client_credentials":
            scope = backend_scope(scope, smart.resource_types)
        token = {"token_type": "Bearer", "access_token": new_secret(), "expires_in": ACCESS_TOKEN_LIFETIME,
                 "scope": scope or ""}
        wants_refresh = REFRESH_SCOPES & set(token["scope"].split())
        if include_refresh_token and grant_type != "client_credentials" and wants_refresh:
            token["refresh_token"] = new_secret()
        return token

    return generate


def _save_token(smart: SmartServer):
    def save(token: dict, request) -> None:
        grant_type = request.payload.grant_type
        account_id, grant_id, code_hash, context = None, None, None, {}
        if grant_type == "authorization_code":
            code = request.authorization_code
            account_id, code_hash, context = code.account_id, code.code_hash, code.context
        elif grant_type == "refresh_token":
            record = request.refresh_token.record
            account_id, grant_id, context = record.account_id, record.grant_id, record.context
        conn = token_transaction(smart.database)  # a code's exchange: the one that used the code up
        smart.tokens.issue(conn, client_id=request.client.get_client_id(), scope=token["scope"],
                           account_id=account_id, context=context, grant_id=grant_id, code_hash=code_hash,
                           expires_in=token["expires_in"], access_token=token["access_token"],
                           refresh_token=token.get("refresh_token"))
        smart.rate_limits.granted(conn, "token", request.client.get_client_id())  # the app's allowance
        end_token_transaction()
        for key in ("patient", "encounter"):
            if context.get(key):
                token[key] = context[key]
        if context.get("patient_choices") and request.client.get_client_id() in smart.first_party:
            token["patient_choices"] = context["patient_choices"]  # the portal offers to switch records
        if grant_type != "client_credentials":
            token["need_patient_banner"] = bool(context.get("need_patient_banner", True))
            token["smart_style_url"] = smart.url("/auth/smart-style.json")

    return save


def build_authorization_server(app, smart: SmartServer) -> AuthorizationServer:
    server = SmartAuthorizationServer(app, query_client=smart.clients.get, save_token=_save_token(smart))
    server.smart = smart
    server.register_token_generator("default", _generate_token(smart))
    server.register_client_auth_method(PrivateKeyJwt.CLIENT_AUTH_METHOD,
                                       PrivateKeyJwt(smart.url("/auth/token"), smart.database))
    server.register_grant(SmartAuthorizationCodeGrant,
                          [S256Only(required=True), SmartOpenIDCode(smart.issuer, smart.keys, smart.fhir_base)])
    server.register_grant(SmartRefreshTokenGrant)
    server.register_grant(BackendServicesGrant)
    server.register_endpoint(SmartRevocation)
    server.register_endpoint(SmartIntrospection)
    server.register_endpoint(SmartRegistration)
    return server
