"""Forgot password: the same answer whether or not the address has an account, a single-use link by
email (no health information) valid 30 minutes, rate-limited in the database; using it sets the new
password and ends every session and token of the account."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from fhirportal.portal.password_reset import PER_ADDRESS, SENT
from fhirportal.store import clock
from fhirportal.store.auth_schema import password_reset
from fhirportal.store.outbox_schema import outbox
from tests.web.flows import PASSWORD, sign_in, text
from tests.web.practice import build_practice

NEW = "a completely new passphrase"


@pytest.fixture
def patients(ctx, app) -> dict:
    """The portal tests' practice (tests/web/practice.py): Maria (p1) and James (p2), maria and linda."""
    return build_practice(ctx, app)


def _ask(client, address: str):
    page = client.get("/portal/forgot-password")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    response = client.post("/portal/forgot-password", data={"csrf_token": csrf, "email": address})
    response.close()  # the email goes out once the answer is done
    return response


def _emails(ctx) -> list:
    with ctx.database.read() as conn:
        return conn.execute(select(outbox).where(outbox.c.channel == "email").order_by(outbox.c.id)).all()


def _link(ctx) -> str:
    return re.search(r"http://localhost(/portal/reset-password\?t=[\w-]+)", _emails(ctx)[-1].body).group(1)


def _reset(client, link: str, password: str = NEW, again: str | None = None):
    page = client.get(link)
    if page.status_code != 200:
        return page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    return client.post(link, data={"csrf_token": csrf, "password": password, "password_again": again or password})


@pytest.mark.parametrize("address", ["maria@example.org", "MARIA@example.org ", "maria"])
def test_an_address_reaches_the_account_by_its_record_invitation_or_user_name(client, ctx, patients, address):
    answer = _ask(client, address if "@" in address else "nobody@example.org")
    assert answer.status_code == 200 and SENT in text(answer)
    if "@" in address:
        email = _emails(ctx)[-1]
        assert email.recipient == "maria@example.org" and "'maria'" in email.body and "30 minutes" in email.body
        assert "Maria" not in email.body and "diabetes" not in email.body.lower()  # no health information


def test_the_same_answer_whether_or_not_the_address_exists(client, ctx, patients):
    unknown = _ask(client, "nobody@example.org")
    known = _ask(client, "maria@example.org")
    assert unknown.status_code == known.status_code == 200
    assert text(unknown) == text(known)
    assert [e.recipient for e in _emails(ctx)] == ["maria@example.org"]


def test_the_link_sets_the_password_once_and_ends_every_session_and_token(app, client, ctx, fhir, patients):
    browser = app.test_client()
    sign_in(browser, "maria")
    app_token = ctx.tokens.mint(client_id="an-app", scope="patient/*.rs offline_access",
                                account_id=patients["maria"].id, context={"patient": "p1"})
    _ask(client, "maria@example.org")
    link = _link(ctx)
    assert "For the portal account maria " in text(client.get(link))
    refused = _reset(client, link, "short")
    assert refused.status_code == 400 and "at least 8" in text(refused)
    assert _reset(client, link, NEW, "different").status_code == 400
    done = _reset(client, link)
    assert done.status_code == 200 and "was changed" in text(done)
    assert browser.get("/portal/").headers["Location"] == "/?state=ended"
    assert fhir.with_token(app_token).get("Patient/p1").status_code == 401  # every token, apps' too
    assert _reset(client, link).status_code == 410  # single use
    assert sign_in(app.test_client(), "maria", NEW).request.path == "/portal/"
    assert sign_in(app.test_client(), "maria", PASSWORD).status_code == 401  # the old password no longer works


def test_a_link_expires_after_30_minutes_and_a_newer_one_supersedes_it(client, ctx, patients):
    _ask(client, "maria@example.org")
    first = _link(ctx)
    _ask(client, "maria@example.org")
    second = _link(ctx)
    assert client.get(first).status_code == 410
    assert client.get(second).status_code == 200
    with ctx.database.write() as conn:
        conn.execute(update(password_reset).values(expires_at=clock.now() - timedelta(seconds=1)))
    assert client.get(second).status_code == 410


def test_requests_are_rate_limited_per_address(client, ctx, patients):
    for _ in range(PER_ADDRESS):
        assert _ask(client, "nobody@example.org").status_code == 200
    limited = _ask(client, "nobody@example.org")
    assert limited.status_code == 429 and "Too many" in text(limited)
    assert _ask(client, "someone-else@example.org").status_code == 200
    with ctx.database.read() as conn:
        assert conn.execute(select(func.count()).select_from(password_reset)).scalar_one() == PER_ADDRESS + 1


def test_forms_need_their_csrf_token(client, patients):
    assert client.post("/portal/forgot-password", data={"email": "maria@example.org"}).status_code == 400
    assert client.get("/portal/reset-password?t=unknown").status_code == 410
    assert "/portal/forgot-password" in client.get("/portal/signin", follow_redirects=True).get_data(as_text=True)
