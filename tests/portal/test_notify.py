"""Portal notifications against real servers: an SMTP server (aiosmtpd) and an HTTP SMS gateway
(http.server), both on loopback; the outbox in SQLite, or PostgreSQL when
FHIRPORTAL_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import threading
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import delete, select

from fhirportal.portal.notify import Delivery, Notifier
from fhirportal.settings import Settings
from fhirportal.store.database import Database
from fhirportal.store.outbox_schema import outbox

LINK = "https://portal.example/register/s3cr3t-link-token"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def database(tmp_path):
    url = os.environ.get("FHIRPORTAL_TEST_DATABASE_URL") or f"sqlite:///{tmp_path}/n.db"
    db = Database(url)
    db.create_schema()
    with db.write() as conn:  # a shared PostgreSQL database may hold rows of an earlier test
        conn.execute(delete(outbox))
    yield db
    with db.write() as conn:
        conn.execute(delete(outbox))
    db.dispose()


def _rows(database: Database) -> list:
    with database.read() as conn:
        return conn.execute(select(outbox).order_by(outbox.c.id)).all()


# -- a real SMTP server -----------------------------------------------------------------------


class _Collect:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"


class _Credentials:
    def __init__(self):
        self.logins = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"right", handled=False)  # not handled: aiosmtpd answers 535


@pytest.fixture
def smtp_server():
    handler = _Collect()
    credentials = _Credentials()
    controller = Controller(
        handler, hostname="127.0.0.1", port=_free_port(), authenticator=credentials, auth_require_tls=False
    )
    controller.start()
    controller.handler_ = handler
    controller.credentials = credentials
    yield controller
    controller.stop()


def _smtp_settings(server, **changes) -> Settings:
    return Settings(
        smtp_host="127.0.0.1", smtp_port=server.port, smtp_security="none", mail_from="practice@example.org"
    ).with_overrides(**changes)


def test_email_arrives_with_subject_and_body(smtp_server, database, caplog):
    notifier = Notifier(_smtp_settings(smtp_server), database)
    with caplog.at_level(logging.INFO, logger="fhirportal.portal.notify"):
        delivery = notifier.send_email("ann@example.org", "Your portal invitation", f"Register here: {LINK}\n")

    assert delivery.ok and delivery.error is None and delivery.channel == "email"
    [envelope] = smtp_server.handler_.envelopes
    assert envelope.mail_from == "practice@example.org"
    assert envelope.rcpt_tos == ["ann@example.org"]
    message = message_from_bytes(envelope.content, policy=policy.default)
    assert message["Subject"] == "Your portal invitation"
    assert message["To"] == "ann@example.org"
    assert message.get_content().replace("\r\n", "\n") == f"Register here: {LINK}\n"

    [row] = _rows(database)
    assert (row.id, row.channel, row.recipient, row.subject) == (delivery.outbox_id, "email", "ann@example.org",
                                                                 "Your portal invitation")
    assert row.delivered is True and row.error is None
    assert notifier.last_failure("ann@example.org") is None
    assert LINK not in caplog.text and "ann@example.org" in caplog.text


def test_email_logs_in_with_username_and_password(smtp_server, database):
    settings = _smtp_settings(smtp_server, smtp_username="portal", smtp_password="right")
    assert Notifier(settings, database).send_email("ann@example.org", "Hi", "body").ok
    assert smtp_server.credentials.logins == [(b"portal", b"right")]
    assert len(smtp_server.handler_.envelopes) == 1

    wrong = Notifier(settings.with_overrides(smtp_password="wrong"), database)
    delivery = wrong.send_email("ann@example.org", "Hi", "body")
    assert not delivery.ok and delivery.error.startswith("SMTP 535")
    assert len(smtp_server.handler_.envelopes) == 1


def test_starttls_refused_by_a_plain_server_is_a_failure(smtp_server, database):
    notifier = Notifier(_smtp_settings(smtp_server, smtp_security="starttls"), database)
    delivery = notifier.send_email("ann@example.org", "Hi", "body")
    assert not delivery.ok and "STARTTLS" in delivery.error
    assert smtp_server.handler_.envelopes == []  # never sent in the clear


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1: (certificate path, key path)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(folder / "cert.pem"), str(folder / "key.pem")


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_email_over_tls_verifies_the_server_certificate(security, certificate, database, monkeypatch):
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(*certificate)
    handler = _Collect()
    tls = {"tls_context": server_context} if security == "starttls" else {"ssl_context": server_context}
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port(), **tls)
    controller.start()
    try:
        settings = Settings(smtp_host="127.0.0.1", smtp_port=controller.port, smtp_security=security)
        untrusted = Notifier(settings, database).send_email("ann@example.org", "Hi", "body")
        assert not untrusted.ok and "CERTIFICATE_VERIFY_FAILED" in untrusted.error
        assert handler.envelopes == []

        monkeypatch.setenv("SSL_CERT_FILE", certificate[0])  # trust the test certificate
        assert Notifier(settings, database).send_email("ann@example.org", "Hi", "body").ok
        assert len(handler.envelopes) == 1
    finally:
        controller.stop()


def test_header_injection_is_a_failure_not_a_send(smtp_server, database):
    notifier = Notifier(_smtp_settings(smtp_server), database)
    delivery = notifier.send_email("ann@example.org", "Hi\r\nBcc: eve@example.org", "body")
    assert not delivery.ok and delivery.error.startswith("invalid email header")
    assert smtp_server.handler_.envelopes == []


def test_without_smtp_host_the_email_lands_in_the_outbox(smtp_server, database, caplog):
    notifier = Notifier(Settings(), database)  # the development default: no SMTP host
    with caplog.at_level(logging.INFO, logger="fhirportal.portal.notify"):
        delivery = notifier.send_email("bob@example.org", "Your portal invitation", f"Register: {LINK}")

    assert delivery == Delivery("email", "bob@example.org", ok=True, error=None, outbox_id=delivery.outbox_id)
    assert smtp_server.handler_.envelopes == []
    [row] = _rows(database)
    assert (row.id, row.channel, row.recipient, row.subject, row.body) == (
        delivery.outbox_id, "email", "bob@example.org", "Your portal invitation", f"Register: {LINK}")
    assert row.delivered is False and row.error is None
    assert f"email to bob@example.org queued in the outbox (id {row.id})" in caplog.messages
    assert LINK not in caplog.text
    assert notifier.last_failure("bob@example.org") is None  # queued is not a failure


def test_unreachable_smtp_server_is_a_recorded_failure(database, caplog):
    settings = Settings(smtp_host="127.0.0.1", smtp_port=_free_port(), smtp_security="none")
    notifier = Notifier(settings, database)
    with caplog.at_level(logging.INFO, logger="fhirportal.portal.notify"):
        delivery = notifier.send_email("carol@example.org", "Hi", f"Register: {LINK}")

    assert not delivery.ok and delivery.error and delivery.outbox_id is not None
    [row] = _rows(database)
    assert row.delivered is False and row.error == delivery.error
    assert notifier.last_failure("carol@example.org") == delivery.error
    assert LINK not in caplog.text and "carol@example.org failed" in caplog.text


# -- a real HTTP SMS gateway --------------------------------------------------------------------


class _Gateway(ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), _GatewayHandler)
        self.requests: list[dict] = []
        self.status = 201

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/messages"


class _GatewayHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        self.server.requests.append(
            {"path": self.path, "headers": dict(self.headers), "body": self.rfile.read(length)}
        )
        answer = b'{"error": "boom"}' if self.server.status >= 400 else b'{"id": "m1"}'
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def gateway():
    server = _Gateway()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_sms_posts_json_with_the_bearer_token(gateway, database, caplog):
    notifier = Notifier(Settings(sms_gateway_url=gateway.url, sms_gateway_token="tok-123"), database)
    message = 'Your PIN is "4711" {to} {message} \\ {"x": 1}\nThanks'
    with caplog.at_level(logging.INFO, logger="fhirportal.portal.notify"):
        delivery = notifier.send_sms("+15551234567", message)

    assert delivery.ok and delivery.channel == "sms" and delivery.recipient == "+15551234567"
    [request] = gateway.requests
    assert request["path"] == "/v1/messages"
    assert request["headers"]["Authorization"] == "Bearer tok-123"
    assert request["headers"]["Content-Type"] == "application/json"
    # Quotes, braces, backslashes and the placeholders themselves in the message stay text.
    assert json.loads(request["body"]) == {"to": "+15551234567", "message": message}
    [row] = _rows(database)
    assert (row.channel, row.recipient, row.subject, row.body, row.delivered, row.error) == (
        "sms", "+15551234567", None, message, True, None)
    assert "4711" not in caplog.text


def test_sms_body_template_from_the_settings(gateway, database):
    template = '{"sms": {"number": "{to}", "text": "Practice: {message}"}, "sender": "Clinic", "flash": false}'
    notifier = Notifier(Settings(sms_gateway_url=gateway.url, sms_body_template=template), database)
    assert notifier.send_sms("+15550000000", 'code "12" }{').ok
    [request] = gateway.requests
    assert "Authorization" not in request["headers"]
    assert json.loads(request["body"]) == {
        "sms": {"number": "+15550000000", "text": 'Practice: code "12" }{'}, "sender": "Clinic", "flash": False}


def test_sms_gateway_error_is_a_recorded_failure(gateway, database):
    gateway.status = 500
    notifier = Notifier(Settings(sms_gateway_url=gateway.url), database)
    delivery = notifier.send_sms("+15551234567", "Your PIN is 4711")

    assert not delivery.ok and "HTTP 500" in delivery.error
    [row] = _rows(database)
    assert row.delivered is False and "500" in row.error
    assert notifier.last_failure("+15551234567") == delivery.error

    gateway.status = 200  # a later success clears the failure
    assert notifier.send_sms("+15551234567", "Your PIN is 4711").ok
    assert notifier.last_failure("+15551234567") is None


def test_unreachable_sms_gateway_is_a_failure_without_the_url(database):
    url = f"http://127.0.0.1:{_free_port()}/send?api_key=secret-key"
    delivery = Notifier(Settings(sms_gateway_url=url), database).send_sms("+15551234567", "hi")
    assert not delivery.ok and "unreachable" in delivery.error and "secret-key" not in delivery.error


def test_without_gateway_the_sms_lands_in_the_outbox(gateway, database, caplog):
    with caplog.at_level(logging.INFO, logger="fhirportal.portal.notify"):
        delivery = Notifier(Settings(), database).send_sms("+15551234567", "Your PIN is 4711")
    assert delivery.ok and gateway.requests == []
    [row] = _rows(database)
    assert (row.channel, row.body, row.delivered, row.error) == ("sms", "Your PIN is 4711", False, None)
    assert f"sms to +15551234567 queued in the outbox (id {row.id})" in caplog.messages


def test_failures_reports_the_latest_attempt_per_recipient(gateway, database):
    notifier = Notifier(Settings(sms_gateway_url=gateway.url), database)
    gateway.status = 503
    notifier.send_sms("+1", "a")
    notifier.send_sms("+2", "b")
    gateway.status = 200
    notifier.send_sms("+2", "c")
    assert notifier.failures(["+1", "+2", "+3", None]) == {"+1": "SMS gateway answered HTTP 503 Service Unavailable"}
    assert notifier.failures([]) == {}


def test_invalid_template_is_refused_at_start(database):
    with pytest.raises(ValueError, match="FHIRPORTAL_SMS_BODY_TEMPLATE"):
        Notifier(Settings(sms_body_template="to={to}&message={message}"), database)


# -- settings -----------------------------------------------------------------------------------


def test_settings_from_env():
    settings = Settings.from_env({
        "FHIRPORTAL_SMTP_HOST": "smtp.example.org",
        "FHIRPORTAL_SMTP_PORT": "465",
        "FHIRPORTAL_SMTP_SECURITY": "TLS",
        "FHIRPORTAL_SMTP_USERNAME": "u",
        "FHIRPORTAL_SMTP_PASSWORD": "p",
        "FHIRPORTAL_MAIL_FROM": "practice@example.org",
        "FHIRPORTAL_SMS_GATEWAY_URL": "https://sms.example.org/send",
        "FHIRPORTAL_SMS_GATEWAY_TOKEN": "t",
        "FHIRPORTAL_SMS_BODY_TEMPLATE": '{"n": "{to}", "m": "{message}"}',
    })
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_security) == ("smtp.example.org", 465, "tls")
    assert (settings.smtp_username, settings.smtp_password, settings.mail_from) == ("u", "p", "practice@example.org")
    assert (settings.sms_gateway_url, settings.sms_gateway_token) == ("https://sms.example.org/send", "t")
    assert settings.sms_body_template == '{"n": "{to}", "m": "{message}"}'

    defaults = Settings.from_env({})
    assert (defaults.smtp_host, defaults.smtp_port, defaults.smtp_security) == (None, 587, "starttls")
    assert (defaults.mail_from, defaults.sms_gateway_url, defaults.sms_gateway_token) == (
        "portal@localhost", None, None)
    assert json.loads(defaults.sms_body_template) == {"to": "{to}", "message": "{message}"}
    with pytest.raises(ValueError, match="FHIRPORTAL_SMTP_SECURITY"):
        Settings.from_env({"FHIRPORTAL_SMTP_SECURITY": "ssl"})
