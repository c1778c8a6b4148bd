"""Signing-key rotation (``fhirportal keys rotate``): the new key is published before it signs, id_tokens
signed before a rotation keep verifying against the JWKS, superseded keys retire once their tokens
have expired."""

from __future__ import annotations

from datetime import timedelta

from click.testing import CliRunner
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import update

from fhirportal.cli import main
from fhirportal.smart.keys import ID_TOKEN_LIFETIME
from fhirportal.store import clock
from fhirportal.store.auth_schema import signing_key
from tests.smart.flows import authorize, exchange

SCOPE = "openid fhirUser launch/patient patient/Patient.rs"


def _id_token(client, app) -> str:
    params, auth = authorize(client, app.client_id, SCOPE, "ada")
    answer = exchange(client, params["code"], auth, app.client_id)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["id_token"]


def _jwks(client) -> KeySet:
    return KeySet.import_key_set(client.get("/auth/jwks").get_json())


def _kid(token: str, client) -> str:
    return jwt.decode(token, _jwks(client), algorithms=["RS256"]).header["kid"]


def _cli(settings, *args: str) -> str:
    result = CliRunner().invoke(main, ["--database-url", settings.database_url, "keys", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_rotated_key_is_published_first_and_signs_after_the_grace(client, smart, public_app, patient_account):
    before = _id_token(client, public_app)
    old_kid = _kid(before, client)
    new = smart.keys.rotate(timedelta(hours=1))
    assert {key["kid"] for key in client.get("/auth/jwks").get_json()["keys"]} == {old_kid, new.kid}
    assert _kid(_id_token(client, public_app), client) == old_kid  # within the grace the old key signs
    assert [k.state(clock.now(), smart.keys.signing_kid()) for k in smart.keys.list()] == ["signing", "next"]

    smart.keys.rotate(timedelta(0))  # an immediate rotation
    after = _id_token(client, public_app)
    assert _kid(after, client) not in (old_kid, new.kid)
    assert _kid(before, client) == old_kid  # signed before both rotations: still verifies


def test_superseded_keys_retire_once_their_tokens_have_expired(client, smart, ctx, public_app, patient_account):
    before = _id_token(client, public_app)
    old_kid = _kid(before, client)
    rotated = smart.keys.rotate(timedelta(0))
    old = next(k for k in smart.keys.list() if k.kid == old_kid)
    assert old.retires_at - rotated.activates_at >= ID_TOKEN_LIFETIME  # kept as long as its tokens live
    with ctx.database.write() as conn:  # the retirement time has come
        conn.execute(update(signing_key).where(signing_key.c.kid == old_kid).values(
            retires_at=clock.now() - timedelta(seconds=1)))
    assert {key["kid"] for key in client.get("/auth/jwks").get_json()["keys"]} == {rotated.kid}
    assert _kid(_id_token(client, public_app), client) == rotated.kid


def test_the_keys_command_lists_and_rotates(settings, client, smart, public_app, patient_account):
    kid = _kid(_id_token(client, public_app), client)
    assert f"{kid}" in _cli(settings, "list") and "signing" in _cli(settings, "list")
    rotated = _cli(settings, "rotate", "--grace", "90m")
    assert "published; signs from" in rotated
    listed = _cli(settings, "list")
    assert "next" in listed and "signing" in listed
    result = CliRunner().invoke(main, ["--database-url", settings.database_url, "keys", "rotate", "--grace", "soon"])
    assert result.exit_code == 2 and "unit" in result.output
