"""The discovery documents: ``.well-known/smart-configuration`` (SMART App Launch 2) and
``.well-known/openid-configuration`` (served under the issuer, which is the FHIR base).

Every URL is absolute; PKCE is S256 only; capabilities use the SMART 2 names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .server import SmartServer

CAPABILITIES = [
    "launch-ehr", "launch-standalone", "authorize-post",
    "client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
    "context-banner", "context-style", "context-ehr-patient", "context-ehr-encounter",
    "context-standalone-patient",
    "sso-openid-connect",
    "permission-offline", "permission-online", "permission-patient", "permission-user", "permission-v1",
    "permission-v2",
]
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
SIGNING_ALGORITHMS = ["RS384", "ES384"]
GRANT_TYPES = ["authorization_code", "refresh_token", "client_credentials"]
OTHER_SCOPES = ["openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter", "offline_access",
                "online_access"]


# The authorization server's endpoints (paths under the origin of the FHIR base): the discovery
# member, the oauth-uris extension name of the CapabilityStatement (None: not in it), the path.
ENDPOINTS = (
    ("authorization_endpoint", "authorize", "/auth/authorize"),
    ("token_endpoint", "token", "/auth/token"),
    ("registration_endpoint", "register", "/auth/register"),
    ("introspection_endpoint", "introspect", "/auth/introspect"),
    ("revocation_endpoint", "revoke", "/auth/revoke"),
    ("management_endpoint", "manage", "/auth/apps"),
    ("jwks_uri", None, "/auth/jwks"),
)
OAUTH_URIS = {name: path for _, name, path in ENDPOINTS if name}


def endpoints(smart: SmartServer) -> dict[str, str]:
    return {member: smart.url(path) for member, _, path in ENDPOINTS}


def scopes_supported() -> list[str]:
    contexts = [f"{c}/*.{p}" for c in ("patient", "user", "system") for p in ("cruds", "rs", "read", "write", "*")]
    return OTHER_SCOPES + contexts


def smart_configuration(smart: SmartServer) -> dict:
    return {
        "issuer": smart.issuer,
        **endpoints(smart),
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": SIGNING_ALGORITHMS,
        "grant_types_supported": GRANT_TYPES,
        "scopes_supported": scopes_supported(),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": CAPABILITIES,
    }


def openid_configuration(smart: SmartServer) -> dict:
    urls = endpoints(smart)
    return {
        "issuer": smart.issuer,
        "authorization_endpoint": urls["authorization_endpoint"],
        "token_endpoint": urls["token_endpoint"],
        "jwks_uri": urls["jwks_uri"],
        "registration_endpoint": urls["registration_endpoint"],
        "introspection_endpoint": urls["introspection_endpoint"],
        "revocation_endpoint": urls["revocation_endpoint"],
        "end_session_endpoint": smart.url("/auth/logout"),  # RP-initiated logout (the portal's sign-out)
        "scopes_supported": OTHER_SCOPES,
        "response_types_supported": ["code"],
        "grant_types_supported": GRANT_TYPES,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": SIGNING_ALGORITHMS,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "fhirUser",
                             "preferred_username"],
    }


def registration_metadata() -> dict:
    """What dynamic registration accepts (authlib validates client metadata against it)."""
    return {
        "grant_types_supported": GRANT_TYPES,
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
    }
