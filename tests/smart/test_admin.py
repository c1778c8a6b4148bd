"""The operator's commands (``fhirportal clients|accounts|tokens``) against live tokens: disabling an app
or an account ends its tokens at once, a disabled app gets no new ones, unlocking ends a lockout, and
every change is in the access log."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from fhirportal.cli import main
from fhirportal.smart.accounts import MAX_FAILED_LOGINS
from tests.smart.flows import PASSWORD, authorization_params, authorize, exchange, login

SCOPE = "openid fhirUser launch/patient patient/*.rs offline_access"


def _run(settings, *args: str, ok: bool = True):
    result = CliRunner().invoke(main, ["--database-url", settings.database_url, *args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


def _tokens(client, app, username="ada") -> dict:
    params, auth = authorize(client, app.client_id, SCOPE, username)
    answer = exchange(client, params["code"], auth, app.client_id)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def _reads(client, token: str) -> int:
    return client.get("/fhir/Patient/p1", headers={"Authorization": f"Bearer {token}"}).status_code


def _refresh(client, app, refresh_token: str):
    return client.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token,
                                            "client_id": app.client_id})


def test_disabling_an_app_revokes_its_tokens_and_refuses_new_ones(client, settings, public_app, patient_account):
    tokens = _tokens(client, public_app)
    assert _reads(client, tokens["access_token"]) == 200
    listed = _run(settings, "clients", "list").output
    assert public_app.client_id in listed and "enabled" in listed and "tokens=1" in listed

    assert "1 tokens revoked" in _run(settings, "clients", "disable", public_app.client_id).output
    assert _reads(client, tokens["access_token"]) == 401
    assert _refresh(client, public_app, tokens["refresh_token"]).status_code in (400, 401)
    shown = _run(settings, "clients", "show", public_app.client_id).output
    assert "disabled:" in shown and "live tokens:   0" in shown and "client_secret" not in shown
    refused = client.get("/auth/authorize", query_string=authorization_params(public_app.client_id, SCOPE).params)
    assert refused.status_code == 400 and "client" in refused.get_data(as_text=True).lower()

    _run(settings, "clients", "enable", public_app.client_id)
    again = _tokens(client, public_app)
    assert _reads(client, again["access_token"]) == 200
    assert _reads(client, tokens["access_token"]) == 401  # what was revoked stays revoked


def test_disabling_an_account_ends_its_tokens_and_sign_in(client, settings, public_app, patient_account):
    tokens = _tokens(client, public_app)
    assert "tokens=1" in _run(settings, "accounts", "list", "--kind", "patient").output
    assert "1 tokens revoked" in _run(settings, "accounts", "disable", "ada").output
    assert _reads(client, tokens["access_token"]) == 401
    assert _refresh(client, public_app, tokens["refresh_token"]).status_code in (400, 401)
    page = login(client, authorization_params(public_app.client_id, SCOPE), "ada")
    assert 'name="step" value="consent"' not in page.get_data(as_text=True)  # refused: the login form again
    assert "disabled" in _run(settings, "accounts", "list").output

    _run(settings, "accounts", "enable", "ada")
    assert _reads(client, _tokens(client, public_app)["access_token"]) == 200


def test_unlock_ends_a_lockout(client, settings, public_app, patient_account):
    auth = authorization_params(public_app.client_id, SCOPE)
    for _ in range(MAX_FAILED_LOGINS):
        login(client, auth, "ada", "wrong password")
    assert "locked until:     -" not in _run(settings, "accounts", "show", "ada").output
    assert " locked " in _run(settings, "accounts", "list").output
    page = login(client, auth, "ada", PASSWORD)
    assert 'name="step" value="consent"' not in page.get_data(as_text=True)  # locked: the right password fails too
    assert "ada unlocked" in _run(settings, "accounts", "unlock", "ada").output
    page = login(client, auth, "ada", PASSWORD)
    assert 'name="step" value="consent"' in page.get_data(as_text=True)
    assert "was not locked" in _run(settings, "accounts", "unlock", "ada").output


def test_tokens_revoke_by_app_and_account(client, settings, smart, public_app, patient_account):
    first = _tokens(client, public_app)
    other, _ = smart.clients.register({"client_name": "Other", "redirect_uris": [public_app.redirect_uris[0]],
                                       "token_endpoint_auth_method": "none"})
    second = _tokens(client, other)
    assert "1 tokens revoked" in _run(settings, "tokens", "revoke", "--client", other.client_id, "--account",
                                      "ada").output
    assert _reads(client, second["access_token"]) == 401 and _reads(client, first["access_token"]) == 200
    assert "1 tokens revoked" in _run(settings, "tokens", "revoke", "--account", "ada").output
    assert _reads(client, first["access_token"]) == 401
    assert _run(settings, "tokens", "revoke", ok=False).exit_code == 2


@pytest.mark.parametrize("args", [("clients", "disable", "nope"), ("clients", "show", "nope"),
                                  ("accounts", "disable", "nobody"), ("accounts", "unlock", "nobody"),
                                  ("accounts", "show", "nobody"), ("tokens", "revoke", "--client", "nope")])
def test_an_unknown_app_or_account_is_a_clear_error(settings, args):
    result = _run(settings, *args, ok=False)
    assert result.exit_code == 1 and "no " in result.output and "Traceback" not in result.output


def test_every_change_is_in_the_access_log(ctx, settings, fhir, public_app, patient_account):
    _run(settings, "clients", "disable", public_app.client_id)
    _run(settings, "accounts", "disable", "ada")
    _run(settings, "accounts", "unlock", "ada")
    _run(settings, "tokens", "revoke", "--account", "ada")
    ctx.audit.flush()
    events = fhir.get("AuditEvent?_count=50").get_json()
    journalled = [(e["resource"]["subtype"][0]["code"], e["resource"]["agent"][0]["who"]["display"])
                  for e in events.get("entry", [])]
    for action in ("client-disable", "account-disable", "account-unlock", "tokens-revoke"):
        assert (action, "app fhirportal-admin") in journalled, journalled


def _authenticated(client, client_id: str, secret: str) -> bool:
    """Whether the app authenticates with ``secret`` (introspecting a token that does not exist)."""
    import base64

    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    answer = client.post("/auth/introspect", data={"token": "no-such-token"},
                         headers={"Authorization": f"Basic {basic}"})
    assert answer.status_code in (200, 401), answer.get_data(as_text=True)
    return answer.status_code == 200


def test_a_client_secret_rotates_with_a_grace_period(client, settings, confidential_app):
    app, old = confidential_app
    assert _authenticated(client, app.client_id, old)
    output = _run(settings, "clients", "rotate-secret", app.client_id, "--grace", "1h").output
    new = output.split("client_secret: ")[1].split()[0]
    assert _authenticated(client, app.client_id, new)
    assert _authenticated(client, app.client_id, old)  # within the grace
    newer = _run(settings, "clients", "rotate-secret", app.client_id, "--grace", "0s").output
    newer = newer.split("client_secret: ")[1].split()[0]
    assert _authenticated(client, app.client_id, newer)
    assert not _authenticated(client, app.client_id, new)  # a grace of 0s: the secret before stops at once
    assert not _authenticated(client, app.client_id, old)  # and the one before that was replaced
    assert "no app" in _run(settings, "clients", "rotate-secret", "nope", ok=False).output


def test_a_public_app_has_no_secret_to_rotate(settings, public_app):
    result = _run(settings, "clients", "rotate-secret", public_app.client_id, ok=False)
    assert result.exit_code == 1 and "has no client secret" in result.output


def test_generated_client_ids_never_look_like_command_line_options():
    from fhirportal.smart.clients import _new_client_id

    assert all(_new_client_id()[0].isalnum() for _ in range(2000))  # 1 in 32 draws starts with - or _
