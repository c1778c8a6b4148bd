"""Log lines: text by default, one JSON object each with FHIRPORTAL_LOG_FORMAT=json; each carries the id of
the request it was written in, and none holds a token, code, password or client secret."""

from __future__ import annotations

import base64
import io
import json
import logging
import logging.config
import re

import pytest

from fhirportal.observability import logs
from fhirportal.settings import Settings
from tests.smart import flows
from tests.support import Fhir, patient


@pytest.fixture
def restored_root():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def json_log(restored_root):
    """Every logger's lines, at DEBUG, as the JSON handler writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.RequestIdFilter())
    restored_root.addHandler(handler)
    restored_root.setLevel(logging.DEBUG)
    return stream


def test_the_setting():
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"FHIRPORTAL_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ValueError, match="FHIRPORTAL_LOG_FORMAT"):
        Settings.from_env({"FHIRPORTAL_LOG_FORMAT": "xml"})


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_logging_configuration_writes_each_format(restored_root, capsys, log_format):
    logging.config.dictConfig({**logs.logging_config(log_format), "loggers": {}})
    logging.getLogger("fhirportal.test").warning("hello %s", "there")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("fhirportal.test").exception("it failed")
    lines = capsys.readouterr().err.splitlines()
    if log_format == "text":
        assert re.fullmatch(r"\[.+\] \[\d+\] \[WARNING\] \[-\] fhirportal\.test: hello there", lines[0])
        assert "RuntimeError: boom" in "\n".join(lines[1:])
        return
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"time", "level", "logger", "message", "request_id"}
    assert (first["level"], first["logger"], first["message"], first["request_id"]) == \
        ("WARNING", "fhirportal.test", "hello there", None)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert second["message"] == "it failed" and "RuntimeError: boom" in second["exception"]


def test_a_line_written_in_a_request_has_its_id(app):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.TextFormatter())
    logger = logging.getLogger("fhirportal.test.text")
    logger.addHandler(handler)
    try:
        with app.test_request_context("/healthz"):
            app.preprocess_request()
            logger.warning("inside")
            request_id = logs.request_id.current()
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = stream.getvalue().splitlines()
    assert f"[WARNING] [{request_id}] fhirportal.test.text: inside" in inside
    assert "[WARNING] [-] fhirportal.test.text: outside" in outside


def _sign_in_and_use_an_app(app, client, fhir) -> tuple[dict[str, str], set[str]]:
    """A patient's account, a confidential app's authorization code flow, its token used and refreshed, a
    wrong password: every secret used, and the request ids answered."""
    smart = app.extensions["smart"]
    fhir.put("Patient/p1", patient(id="p1"))
    smart.accounts.create("ada", flows.PASSWORD, kind="patient", fhir_user="Patient/p1", patients=("p1",))
    registered, secret = smart.clients.register({"client_name": "Log App", "redirect_uris": [flows.REDIRECT_URI]})
    client_id = registered.client_id
    used = {"password": flows.PASSWORD, "client-secret": secret}
    ids = set()
    wrong = "Wrong-password-0123456789"
    used["wrong-password"] = wrong
    auth = flows.authorization_params(client_id, "launch/patient openid fhirUser offline_access patient/*.rs")
    page = client.get("/auth/authorize", query_string=auth.params)
    ids.add(page.headers["X-Request-ID"])
    refused = flows.login(client, auth, "ada", wrong)
    assert refused.status_code == 401
    callback, auth = flows.authorize(client, client_id, "launch/patient openid fhirUser offline_access patient/*.rs",
                                     "ada")
    used["code"] = callback["code"]
    issued = flows.exchange(client, callback["code"], auth, client_id, secret)
    assert issued.status_code == 200, issued.get_data(as_text=True)
    ids.add(issued.headers["X-Request-ID"])
    tokens = issued.get_json()
    used |= {"access": tokens["access_token"], "refresh": tokens["refresh_token"], "id_token": tokens["id_token"]}
    app_fhir = Fhir(client, tokens["access_token"])
    for answer in (app_fhir.get("Patient/p1"), app_fhir.get("Observation?patient=p1"), app_fhir.get("Patient/p2")):
        ids.add(answer.headers["X-Request-ID"])
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    refreshed = client.post("/auth/token", headers={"Authorization": f"Basic {basic}"},
                            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.get_data(as_text=True)
    used |= {"access-2": refreshed.get_json()["access_token"], "refresh-2": refreshed.get_json()["refresh_token"]}
    smart.accounts.create("eve", flows.PASSWORD, kind="patient", fhir_user="Patient/p1", patients=("p1",))
    stranger = app.test_client()  # not signed in as ada
    for attempt in range(5):  # locked at the fifth
        wrong_again = f"Wrong-password-{attempt}-abcdef"
        used[f"wrong-{attempt}"] = wrong_again
        refused = flows.login(stranger, flows.authorization_params(client_id, "openid patient/*.rs"), "eve",
                              wrong_again)
        assert refused.status_code == 401
        ids.add(refused.headers["X-Request-ID"])
    return used, ids


def test_json_lines_parse_carry_the_request_id_and_hold_no_secret(app, client, fhir, json_log):
    used, ids = _sign_in_and_use_an_app(app, client, fhir)
    app.extensions["fhirportal"].audit.flush()
    lines = json_log.getvalue().splitlines()
    assert len(lines) > 10, "nothing was logged: the check would prove nothing"
    entries = [json.loads(line) for line in lines]  # each line one JSON object
    assert all({"time", "level", "logger", "message", "request_id"} <= set(e) for e in entries)
    assert {e["request_id"] for e in entries} & ids, "no line of a request carries its id"
    locked = [e for e in entries if e["logger"] == "fhirportal.smart.accounts" and "locked" in e["message"]]
    assert len(locked) == 1 and locked[0]["level"] == "WARNING" and locked[0]["request_id"] in ids
    text = json_log.getvalue()
    found = sorted(name for name, value in used.items() if re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", text))
    assert not found, f"secrets in the JSON log: {found}"
