"""The practice's PHR invite settings (Patient Fusion's "PHR invite" tab): a small JSON admin API.

Per practice user (staff account):

* ``may_invite`` — may enroll patients in the portal. Stored as the account's ``invite`` role, which
  the enrollment operations (``$portal-invite`` …, ``fhirportal.portal.operations``) read on every
  request, so a change takes effect at once. Administrators (role ``admin``) may always invite.
* ``auto_invite_on_signed_note`` — signing a chart note invites the patient (table
  ``staff_phr_setting``).

Practice-level (table ``practice_setting``, see ``PRACTICE_DEFAULTS``): ``auto_invite_enabled``
(off until an administrator turns it on) and ``lab_sharing_default`` (``withheld`` | ``shared``).
The FHIR API's ``AccessPolicy`` reads ``lab_sharing_default`` at most every 30 seconds per worker
(``install`` hands it the reader); a change through this API applies at once in the worker that made it.

Endpoints (flask-smorest, so they are in the OpenAPI document at ``/api-docs/openapi.json``), all
with ``Authorization: Bearer <token>`` of a staff user (a ``user/`` token of an active staff account):

* ``GET /admin/phr-settings`` — every staff user may read (read-only view);
* ``PATCH /admin/phr-settings`` and ``PATCH /admin/phr-settings/users/{username}`` — administrators
  only (others: 403). Every change, and every refused change, is journalled in the access log
  (action ``phr-settings``).

Errors are JSON ``{"error": …, "error_description": …}`` (invalid bodies add ``errors``, the
messages per field): 401 without a valid token (with ``WWW-Authenticate: Bearer``), 403 for
non-staff tokens and non-admin writes, 404 for an unknown user, 409 for taking "may invite" from an
administrator, 422 for a body that is not what the schema says.

Other code reads the settings through ``PracticeSettings`` (``app.extensions["phr_settings"]``)::

    settings = PracticeSettings(database)
    settings.get("auto_invite_enabled")   # False unless an administrator turned it on
    settings.auto_invites(account_id)     # does this user's signed chart note invite the patient?
    settings.auto_invite_users()          # the account ids for which that holds
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlencode

from flask import Flask, g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validates_schema
from marshmallow.validate import OneOf
from sqlalchemy import Connection, insert, select, update
from werkzeug.exceptions import HTTPException

from fhirportal.fhir.audit import Access
from fhirportal.smart.access import AccessContext
from fhirportal.smart.accounts import Account, AccountStore
from fhirportal.store import clock
from fhirportal.store.auth_schema import account as account_table
from fhirportal.store.database import Database
from fhirportal.store.portal_settings_schema import practice_setting, staff_phr_setting

from .operations import INVITING_ROLES

LAB_SHARING = ("withheld", "shared")
PRACTICE_DEFAULTS = {"auto_invite_enabled": False, "lab_sharing_default": "withheld"}
INVITE_ROLE = "invite"
ADMIN_ROLE = "admin"
JOURNAL_ACTION = "phr-settings"
SECURITY_SCHEME = "bearerAuth"


# ---------------------------------------------------------------------- the store
class PracticeSettings:
    """Read (and, for the admin API, write) the practice's PHR invite settings."""

    def __init__(self, database: Database):
        self.database = database

    def get(self, key: str):
        """One practice-level setting (its default while nobody has set it); KeyError for an unknown key."""
        if key not in PRACTICE_DEFAULTS:
            raise KeyError(key)
        with self.database.read() as conn:
            value = conn.execute(select(practice_setting.c.value).where(practice_setting.c.key == key)).scalar()
        return PRACTICE_DEFAULTS[key] if value is None else json.loads(value)

    def lab_sharing_default(self, conn: Connection | None = None) -> str:
        """``withheld`` | ``shared``, read in ``conn`` (an open transaction) or a read transaction of its own."""
        if conn is None:
            return self.get("lab_sharing_default")
        value = conn.execute(select(practice_setting.c.value).where(
            practice_setting.c.key == "lab_sharing_default")).scalar()
        return PRACTICE_DEFAULTS["lab_sharing_default"] if value is None else json.loads(value)

    def all(self, conn: Connection | None = None) -> dict:
        """Every practice-level setting, defaults filled in."""
        if conn is None:
            with self.database.read() as conn:
                return self.all(conn)
        stored = {row.key: json.loads(row.value) for row in conn.execute(select(practice_setting))}
        return {key: stored.get(key, default) for key, default in PRACTICE_DEFAULTS.items()}

    def set(self, conn: Connection, values: dict, account_id: int | None) -> None:
        """Store practice-level settings in the caller's write transaction."""
        now = clock.now()
        for key, value in values.items():
            if key not in PRACTICE_DEFAULTS:
                raise KeyError(key)
            self.database.lock(conn, f"practice_setting:{key}")
            changed = conn.execute(update(practice_setting).where(practice_setting.c.key == key).values(
                value=json.dumps(value), updated=now, updated_by=account_id)).rowcount
            if not changed:
                conn.execute(insert(practice_setting).values(key=key, value=json.dumps(value), updated=now,
                                                             updated_by=account_id))

    def user_flags(self, conn: Connection | None = None) -> dict[int, bool]:
        """``auto_invite_on_signed_note`` by account id (accounts without a row: False)."""
        if conn is None:
            with self.database.read() as conn:
                return self.user_flags(conn)
        rows = conn.execute(select(staff_phr_setting.c.account_id, staff_phr_setting.c.auto_invite_on_signed_note))
        return {row.account_id: bool(row.auto_invite_on_signed_note) for row in rows}

    def set_user_flag(self, conn: Connection, account_id: int, value: bool, by: int | None) -> None:
        """Set one user's ``auto_invite_on_signed_note`` in the caller's write transaction."""
        now = clock.now()
        self.database.lock(conn, f"staff_phr_setting:{account_id}")
        changed = conn.execute(update(staff_phr_setting).where(staff_phr_setting.c.account_id == account_id).values(
            auto_invite_on_signed_note=value, updated=now, updated_by=by)).rowcount
        if not changed:
            conn.execute(insert(staff_phr_setting).values(account_id=account_id, auto_invite_on_signed_note=value,
                                                          updated=now, updated_by=by))

    def auto_invite_users(self) -> list[int]:
        """The account ids whose signed chart notes invite the patient: active staff accounts with the
        flag on, and none at all while the practice's ``auto_invite_enabled`` is off."""
        with self.database.read() as conn:
            if not self.all(conn)["auto_invite_enabled"]:
                return []
            return list(conn.execute(select(staff_phr_setting.c.account_id).join(
                account_table, account_table.c.id == staff_phr_setting.c.account_id).where(
                staff_phr_setting.c.auto_invite_on_signed_note.is_(True), account_table.c.kind == "staff",
                account_table.c.active.is_(True)).order_by(staff_phr_setting.c.account_id)).scalars())

    def auto_invites(self, account_id: int) -> bool:
        """Does a chart note signed by this account invite the patient?"""
        return account_id in self.auto_invite_users()


# ---------------------------------------------------------------------- schemas
class StrictBoolean(fields.Boolean):
    """A JSON ``true`` / ``false`` only (not ``"yes"``, ``1`` …)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


AUTO_INVITE_ENABLED = "Signing a chart note may invite the patient (for the users who allow it); off by default"
LAB_SHARING_DEFAULT = "Whether new lab results are shared with the patient portal or withheld (the default)"
MAY_INVITE = ("May enroll patients in the portal (the account's `invite` role; administrators always may)")
AUTO_INVITE_ON_SIGNED_NOTE = "Signing a chart note invites the patient (when the practice has auto-invite on)"


class PracticeSettingsSchema(Schema):
    auto_invite_enabled = fields.Boolean(required=True, metadata={"description": AUTO_INVITE_ENABLED})
    lab_sharing_default = fields.String(required=True, validate=OneOf(LAB_SHARING),
                                        metadata={"description": LAB_SHARING_DEFAULT})


class StaffUserSchema(Schema):
    username = fields.String(required=True)
    fhir_user = fields.String(data_key="fhirUser", allow_none=True, metadata={"description": "e.g. Practitioner/…"})
    roles = fields.List(fields.String(), required=True)
    active = fields.Boolean(required=True)
    may_invite = fields.Boolean(required=True, metadata={"description": MAY_INVITE})
    auto_invite_on_signed_note = fields.Boolean(required=True, metadata={"description": AUTO_INVITE_ON_SIGNED_NOTE})


class PhrSettingsSchema(Schema):
    practice = fields.Nested(PracticeSettingsSchema, required=True)
    users = fields.List(fields.Nested(StaffUserSchema), required=True, metadata={"description": "Staff users"})
    can_edit = fields.Boolean(required=True, metadata={"description": "Whether the caller (an admin) may change them"})


class _AtLeastOne(Schema):
    @validates_schema
    def _not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError(f"Give at least one of: {', '.join(self.fields)}")


class PracticeSettingsPatchSchema(_AtLeastOne):
    auto_invite_enabled = StrictBoolean(metadata={"description": AUTO_INVITE_ENABLED})
    lab_sharing_default = fields.String(validate=OneOf(LAB_SHARING), metadata={"description": LAB_SHARING_DEFAULT})


class StaffUserPatchSchema(_AtLeastOne):
    may_invite = StrictBoolean(metadata={"description": MAY_INVITE})
    auto_invite_on_signed_note = StrictBoolean(metadata={"description": AUTO_INVITE_ON_SIGNED_NOTE})


class PhrSettingsErrorSchema(Schema):
    error = fields.String(required=True)
    error_description = fields.String(required=True)
    errors = fields.Dict(metadata={"description": "Messages per field of an invalid body"})


# ---------------------------------------------------------------------- the API
class ApiError(Exception):
    def __init__(self, status: int, error: str, description: str, headers: dict | None = None):
        super().__init__(description)
        self.status, self.error, self.description, self.headers = status, error, description, headers or {}


@dataclass(frozen=True)
class Caller:
    access: AccessContext
    account: Account

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.account.roles


def _user_view(account: Account, roles: frozenset[str], auto_invite: bool) -> dict:
    return {"username": account.username, "fhir_user": account.fhir_user, "roles": sorted(roles),
            "active": account.active, "may_invite": bool(INVITING_ROLES & roles),
            "auto_invite_on_signed_note": auto_invite}


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value else None


def _error_body(error: str, description: str, **extra) -> dict:
    return {"error": error, "error_description": description, **extra}


def build_blueprint(ctx, accounts: AccountStore, store: PracticeSettings) -> Blueprint:
    blp = Blueprint("phr_settings", __name__, url_prefix="/admin/phr-settings",
                    description="PHR invite settings: who may enroll patients in the portal, auto-invite on signed "
                                "chart notes, lab sharing default. Every staff user may read them; only "
                                "administrators may change them.")
    security = [{SECURITY_SCHEME: []}]
    refusals = {401: "No, unknown, expired or revoked access token",
                403: "Not a staff user's token, or (changes) not an administrator"}

    def journal(caller: Caller, query: str, outcome: int) -> None:
        ctx.audit.record(Access(action=JOURNAL_ACTION, resource_type=None, query=query, outcome=outcome,
                                client_id=caller.access.client_id[:128], account_id=caller.account.id,
                                fhir_user=_clip(caller.access.fhir_user or caller.account.fhir_user, 200)))

    @blp.before_request
    def authenticate():
        header = request.headers.get("Authorization", "")
        scheme, _, raw = header.strip().partition(" ")
        if not header.strip():
            raise ApiError(401, "invalid_request", "This API needs a staff user's access token "
                           "(Authorization: Bearer <token>)", {"WWW-Authenticate": 'Bearer realm="fhirportal"'})
        access = ctx.tokens.authenticate(raw.strip()) if scheme.lower() == "bearer" and raw.strip() else None
        if access is None:
            raise ApiError(401, "invalid_token", "The access token is missing, unknown, expired or revoked",
                           {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        account = accounts.get(access.account_id) if access.account_id is not None else None
        if access.context != "user" or account is None or account.kind != "staff" or not account.active:
            raise ApiError(403, "forbidden", "The PHR invite settings are for practice staff (a user token)")
        g.phr_caller = caller = Caller(access, account)
        if request.method not in ("GET", "HEAD", "OPTIONS") and not caller.is_admin:
            journal(caller, "refused?" + urlencode({"method": request.method, "path": request.path}), 403)
            raise ApiError(403, "forbidden", "Only an administrator can change the PHR invite settings; "
                           "everyone can view them")

    @blp.errorhandler(ApiError)
    def api_error(error: ApiError):
        return _error_body(error.error, error.description), error.status, error.headers

    @blp.errorhandler(HTTPException)
    def http_error(error: HTTPException):  # webargs' 422 / invalid JSON 400, and any other abort
        status = error.code or 500
        extra = {}
        messages = (getattr(error, "data", None) or {}).get("messages")
        if messages:
            extra["errors"] = messages.get("json", messages) if isinstance(messages, dict) else messages
        name = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 422: "invalid_request"}
        description = "The body does not match the schema" if status == 422 else (error.description or error.name)
        return _error_body(name.get(status, "error"), description, **extra), status

    @blp.route("")
    class PhrSettings(MethodView):
        @blp.doc(security=security)
        @blp.response(200, PhrSettingsSchema)
        @blp.alt_response(401, schema=PhrSettingsErrorSchema, description=refusals[401])
        @blp.alt_response(403, schema=PhrSettingsErrorSchema, description=refusals[403])
        def get(self):
            """The practice settings and every staff user's two flags (read-only unless an administrator)"""
            with ctx.database.read() as conn:
                practice = store.all(conn)
                flags = store.user_flags(conn)
            users = [_user_view(a, a.roles, flags.get(a.id, False)) for a in accounts.staff()]
            return {"practice": practice, "users": users, "can_edit": g.phr_caller.is_admin}

        @blp.doc(security=security)
        @blp.arguments(PracticeSettingsPatchSchema)
        @blp.response(200, PracticeSettingsSchema)
        @blp.alt_response(401, schema=PhrSettingsErrorSchema, description=refusals[401])
        @blp.alt_response(403, schema=PhrSettingsErrorSchema, description=refusals[403])
        @blp.alt_response(400, schema=PhrSettingsErrorSchema, description="The body is not JSON")
        @blp.alt_response(422, schema=PhrSettingsErrorSchema, description="Not a valid body")
        def patch(self, values: dict):
            """Change practice-level settings (administrators only)"""
            caller: Caller = g.phr_caller
            with ctx.database.write() as conn:
                store.set(conn, values, caller.account.id)
                practice = store.all(conn)
            if "lab_sharing_default" in values:
                ctx.access_policy.forget_lab_sharing()  # this worker at once; the others within their window
            journal(caller, "practice?" + urlencode({k: json.dumps(v) for k, v in values.items()}), 200)
            return practice

    @blp.route("/users/<username>", methods=["PATCH"])
    @blp.doc(security=security)
    @blp.arguments(StaffUserPatchSchema)
    @blp.response(200, StaffUserSchema)
    @blp.alt_response(401, schema=PhrSettingsErrorSchema, description=refusals[401])
    @blp.alt_response(403, schema=PhrSettingsErrorSchema, description=refusals[403])
    @blp.alt_response(404, schema=PhrSettingsErrorSchema, description="No staff user of that name")
    @blp.alt_response(409, schema=PhrSettingsErrorSchema, description="Administrators always may enroll patients")
    @blp.alt_response(400, schema=PhrSettingsErrorSchema, description="The body is not JSON")
    @blp.alt_response(422, schema=PhrSettingsErrorSchema, description="Not a valid body")
    def patch_user(values: dict, username: str):
        """Change one staff user's flags (administrators only)"""
        caller: Caller = g.phr_caller
        target = accounts.by_username(username)
        if target is None or target.kind != "staff":
            raise ApiError(404, "not_found", f"No staff user '{username[:200]}'")
        if values.get("may_invite") is False and ADMIN_ROLE in target.roles:
            raise ApiError(409, "conflict", "Administrators always may enroll patients: take away the admin role "
                           "first")
        with ctx.database.write() as conn:
            roles = target.roles
            if "may_invite" in values:
                roles = accounts.set_role(conn, target.id, INVITE_ROLE, values["may_invite"])
                if roles is None:  # deleted meanwhile
                    raise ApiError(404, "not_found", f"No staff user '{username[:200]}'")
            if "auto_invite_on_signed_note" in values:
                store.set_user_flag(conn, target.id, values["auto_invite_on_signed_note"], caller.account.id)
            auto_invite = store.user_flags(conn).get(target.id, False)
        journal(caller, "user?" + urlencode({"username": target.username,
                                             **{k: json.dumps(v) for k, v in values.items()}}), 200)
        return _user_view(target, roles, auto_invite)

    return blp


def install(app: Flask, ctx, accounts: AccountStore) -> PracticeSettings:
    """Register the API on the app's flask-smorest ``Api`` (its OpenAPI document) and expose the store as
    ``app.extensions["phr_settings"]``."""
    api = app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
    if SECURITY_SCHEME not in api.spec.components.security_schemes:
        api.spec.components.security_scheme(SECURITY_SCHEME, {"type": "http", "scheme": "bearer"})
    store = PracticeSettings(ctx.database)
    api.register_blueprint(build_blueprint(ctx, accounts, store))
    # What patient tokens see of lab results follows the practice's default (fhirportal.fhir.authorization)
    ctx.access_policy.lab_sharing_default = store.lab_sharing_default
    app.extensions["phr_settings"] = store
    return store
