"""Tables of the authorization server and the portal accounts, on the same metadata as the resources.

Every secret (password, client secret, authorization code, access and refresh token, launch value,
session id) is stored as a hash, never as itself. Nothing here is kept in process memory, so any
number of workers and hosts share one state.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Index, Integer, String, Table, Text

from .schema import metadata

# A person who signs in: practice staff (fhir_user Practitioner/…) or a portal user (Patient/… or
# RelatedPerson/… for a caregiver). ``roles`` is space-separated (admin, staff, invite).
account = Table(
    "account",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(200), nullable=False, unique=True),
    Column("password_hash", Text, nullable=True),  # null: no password yet (an invited portal user)
    Column("kind", String(16), nullable=False),  # staff | patient
    Column("fhir_user", String(200), nullable=True),
    Column("organization", String(200), nullable=True),  # Organization/… the staff member works for
    Column("roles", Text, nullable=False, default=""),
    Column("active", Boolean, nullable=False, default=True),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", DateTime(timezone=True), nullable=True),
    Column("created", DateTime(timezone=True), nullable=False),
)

# The patients a portal account may act for (its own record; a caregiver's patients).
account_patient = Table(
    "account_patient",
    metadata,
    Column("account_id", Integer, ForeignKey("account.id"), primary_key=True),
    Column("patient_id", String(64), primary_key=True),
)

# A registered SMART app. ``client_metadata`` is the RFC 7591 metadata as JSON.
oauth_client = Table(
    "oauth_client",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("client_secret_hash", String(128), nullable=True),
    Column("client_metadata", Text, nullable=False),
    Column("issued_at", Integer, nullable=False),
    Column("disabled_at", DateTime(timezone=True), nullable=True),  # an operator disabled it (no tokens)
    # the secret before the last rotation, accepted until it expires (fhirportal clients rotate-secret)
    Column("previous_secret_hash", String(128), nullable=True),
    Column("previous_secret_expires_at", DateTime(timezone=True), nullable=True),
)

authorization_code = Table(
    "oauth_authorization_code",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(128), nullable=False),
    Column("account_id", Integer, nullable=True),
    Column("redirect_uri", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("nonce", Text, nullable=True),
    Column("code_challenge", Text, nullable=True),
    Column("code_challenge_method", String(16), nullable=True),
    Column("context", Text, nullable=False),  # JSON: patient, encounter, fhirUser, banner, style
    Column("auth_time", Integer, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
)

# One row per issued access token (and its refresh token). Rotation issues a new row in the same
# ``grant_id``; revoking an authorization revokes every row of the grant.
oauth_token = Table(
    "oauth_token",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("access_token_hash", String(64), nullable=False, unique=True),
    Column("refresh_token_hash", String(64), nullable=True, unique=True),
    Column("grant_id", String(64), nullable=False),
    Column("client_id", String(128), nullable=False),
    Column("account_id", Integer, nullable=True),
    Column("scope", Text, nullable=False),
    Column("context", Text, nullable=False),  # JSON: patient, encounter, fhirUser, organization
    Column("code_hash", String(64), nullable=True),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("refresh_expires_at", DateTime(timezone=True), nullable=True),
    Column("refreshed_at", DateTime(timezone=True), nullable=True),  # its refresh token was used
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Index("ix_oauth_token_grant", "grant_id"),
    Index("ix_oauth_token_account_client", "account_id", "client_id"),
    Index("ix_oauth_token_code", "code_hash"),
)

# An EHR launch: the ``launch`` value an app brings to the authorize endpoint.
launch_context = Table(
    "smart_launch",
    metadata,
    Column("launch_hash", String(64), primary_key=True),
    Column("account_id", Integer, nullable=True),
    Column("context", Text, nullable=False),  # JSON: patient, encounter
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# ``jti`` values of client assertions already used (replay refused until they expire).
client_assertion = Table(
    "oauth_client_assertion",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("jti", String(256), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# The server's signing keys (id_tokens). The newest key whose time has come signs; a key is published
# from its creation until it retires (every id_token it signed has expired).
signing_key = Table(
    "signing_key",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("private_jwk", Text, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("activates_at", DateTime(timezone=True), nullable=True),  # signs from then (null: from created)
    Column("retires_at", DateTime(timezone=True), nullable=True),  # leaves the JWKS then (null: never)
)

# Requests counted per bucket ("token:client:…", "login:address:…") and fixed window, for every worker.
rate_limit = Table(
    "rate_limit",
    metadata,
    Column("bucket", String(200), primary_key=True),
    Column("window_start", DateTime(timezone=True), primary_key=True),
    Column("hits", Integer, nullable=False),
    Index("ix_rate_limit_window", "window_start"),
)

# A browser session on the login / consent / portal pages.
login_session = Table(
    "login_session",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("account_id", Integer, nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("auth_time", Integer, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("user_agent", String(300), nullable=True),  # the browser's, shown on the account page
    Index("ix_login_session_account", "account_id"),
)

# The access log (``access_log``) is in journal_schema.py.

# A portal invitation (Patient Fusion's "invite to PHR") for a Patient or a RelatedPerson
# (caregiver). Its FHIR face is a Task (``task_id``) and a Person (``person_id``). The PIN is kept
# encrypted (staff may look it up) and as a keyed hash (checked in constant time); the
# registration link only as a hash. The phone path (no PIN): a 6-digit security code sent by SMS,
# kept only as a keyed hash with its expiry; ``code_requests`` counts the requests for one (at most 3).
portal_invitation = Table(
    "portal_invitation",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subject_type", String(16), nullable=False),  # Patient | RelatedPerson
    Column("subject_id", String(64), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("task_id", String(64), nullable=False),
    Column("person_id", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # invited locked cancelled registered revoked (expired: computed)
    Column("email", String(320), nullable=True),
    Column("phone", String(64), nullable=True),
    Column("pin_encrypted", Text, nullable=False),
    Column("pin_hash", String(64), nullable=False),
    Column("link_hash", String(64), nullable=True, unique=True),
    Column("failed_attempts", Integer, nullable=False, default=0),
    Column("requested_by", String(200), nullable=True),  # the staff member (fhirUser) or the app
    Column("account_id", Integer, nullable=True),  # once registered
    Column("created", DateTime(timezone=True), nullable=False),
    Column("sent", DateTime(timezone=True), nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("ended", DateTime(timezone=True), nullable=True),  # cancelled, registered or revoked at
    Column("delivery_error", Text, nullable=True),
    Column("code_hash", String(64), nullable=True),  # the latest SMS security code, keyed hash
    Column("code_expires_at", DateTime(timezone=True), nullable=True),
    Column("code_requests", Integer, nullable=False, default=0),
    Column("consent_id", String(64), nullable=True),  # a caregiver's Consent (RelatedPerson), once registered
    Index("ix_portal_invitation_subject", "subject_type", "subject_id", "id"),
)

# "Forgot password": one row per request (the rate limit counts them by address and by client), with
# the single-use link's digest when the address belonged to an account. Addresses and client
# addresses are kept only as keyed hashes.
password_reset = Table(
    "password_reset",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("address_hash", String(64), nullable=False),  # the email asked for
    Column("client_hash", String(64), nullable=True),  # the requesting client's IP address
    Column("account_id", Integer, nullable=True),  # null: no account has that address
    Column("link_hash", String(64), nullable=True, unique=True),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("used_at", DateTime(timezone=True), nullable=True),  # the link was used (or superseded)
    Index("ix_password_reset_address", "address_hash", "created"),
    Index("ix_password_reset_client", "client_hash", "created"),
    Index("ix_password_reset_account", "account_id"),
)
