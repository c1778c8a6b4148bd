"""``FHIRPORTAL_SECRET_KEY`` rotation with open invitations: with the new key first and the old one after
it, PINs made before still register and are still shown to inviters; ``fhirportal secrets reencrypt``
moves every PIN to the new key (resumable), after which the old key can go."""

from __future__ import annotations

import contextlib
from dataclasses import replace

from click.testing import CliRunner

from fhirportal.app import create_app
from fhirportal.cli import main
from fhirportal.portal.pins import PinVault
from fhirportal.settings import DEVELOPMENT_SECRET_KEY
from tests.portal.conftest import CAREGIVER_BIRTH_DATE, link_token, params, register
from tests.support import Fhir

NEW_KEY = "a-new-secret-key-for-the-rotation-test"


@contextlib.contextmanager
def _server(settings, secret_key: str):
    """Another server process on the same database, configured with ``secret_key``."""
    app = create_app(replace(settings, secret_key=secret_key), create_schema=False)
    try:
        yield app
    finally:
        app.extensions["fhirportal"].database.dispose()


def _reencrypt(settings, secret_key: str) -> str:
    result = CliRunner().invoke(main, ["--database-url", settings.database_url, "secrets", "reencrypt", "--batch", "1"],
                                env={"FHIRPORTAL_SECRET_KEY": secret_key})
    assert result.exit_code == 0, result.output
    return result.output


def test_open_invitations_survive_a_secret_key_rotation(ctx, settings, practice):
    assert settings.secret_keys == (DEVELOPMENT_SECRET_KEY,)  # the session app: the old key
    maria_pin = params(practice["nurse"].post("Patient/p1/$portal-invite"))["accessCode"]
    carer_pin = params(practice["nurse"].post("RelatedPerson/rp1/$portal-invite"))["accessCode"]
    nurse_token = practice["nurse"].token

    with _server(settings, f"{NEW_KEY}, {DEVELOPMENT_SECRET_KEY}") as rotated:
        nurse = Fhir(rotated.test_client(), nurse_token)
        assert params(nurse.get("Patient/p1/$portal-status"))["accessCode"] == maria_pin
        answer = register(rotated.test_client(), link_token(ctx, "maria@example.org"), pin=maria_pin)
        assert answer.status_code == 201, answer.get_data(as_text=True)

    output = _reencrypt(settings, f"{NEW_KEY},{DEVELOPMENT_SECRET_KEY}")
    assert "2 PINs moved to the newest key, 0 already under it" in output
    assert "0 PINs moved to the newest key, 2 already under it" in _reencrypt(
        settings, f"{NEW_KEY},{DEVELOPMENT_SECRET_KEY}")  # run again: nothing left

    with _server(settings, NEW_KEY) as new_only:  # the old key removed
        nurse = Fhir(new_only.test_client(), nurse_token)
        assert params(nurse.get("RelatedPerson/rp1/$portal-status"))["accessCode"] == carer_pin
        answer = register(new_only.test_client(), link_token(ctx, "carer@example.org"), pin=carer_pin,
                          username="carer", birth_date=CAREGIVER_BIRTH_DATE)
        assert answer.status_code == 201, answer.get_data(as_text=True)


def test_a_vault_matches_and_opens_under_every_key_and_makes_values_under_the_newest():
    old, new = PinVault(("old-key",)), PinVault(("new-key", "old-key"))
    token, keyed = old.encrypt("ABCDEFG"), old.keyed_hash("ABCDEFG")
    assert new.decrypt(token) == "ABCDEFG" and new.matches("abcd-efg", keyed)
    assert not new.is_current(token) and new.is_current(new.encrypt("ABCDEFG"))
    assert new.keyed_hash("ABCDEFG") != keyed and not PinVault(("new-key",)).matches("ABCDEFG", keyed)
    assert not new.matches("ABCDEFH", keyed)
