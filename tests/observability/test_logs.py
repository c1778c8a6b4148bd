"""Log lines: text by default, one JSON object each with FHIRPORTAL_LOG_FORMAT=json; each carries the id of
the request it was written in, and none holds a token, code, password or client secret."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import re

import pytest

from fhirportal.observability import logs
from fhirportal.settings import Settings
from tests.observability.sign_in import sign_in_and_use_an_app


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


def test_json_lines_parse_carry_the_request_id_and_hold_no_secret(app, client, fhir, json_log):
    used, ids = sign_in_and_use_an_app(app, client, fhir)
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


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_gunicorn_writes_the_application_lines_in_the_format(restored_root, tmp_path, monkeypatch, app, log_format):
    from gunicorn.config import Config

    from fhirportal.observability.gunicorn_logging import Logger

    monkeypatch.setenv("FHIRPORTAL_LOG_FORMAT", log_format)
    error_log = tmp_path / "error.log"
    config = Config()
    config.set("errorlog", str(error_log))
    gunicorn = Logger(config)
    try:
        gunicorn.info("gunicorn says %s", "hi")
        with app.test_request_context("/healthz"):
            app.preprocess_request()
            logging.getLogger("fhirportal.test.gunicorn").warning("the app says hi")
            request_id = logs.request_id.current()
        logging.getLogger("fhirportal.test.gunicorn").debug("not at INFO")
        gunicorn.setup(config)  # a reload: no second copy of each line
        logging.getLogger("fhirportal.test.gunicorn").warning("after the reload")
    finally:
        for log in (gunicorn.error_log, gunicorn.access_log):
            for handler in log.handlers[:]:
                log.removeHandler(handler)
                handler.close()
    lines = error_log.read_text().splitlines()
    assert len(lines) == 3
    if log_format == "json":
        entries = [json.loads(line) for line in lines]
        assert [(e["logger"], e["message"], e["request_id"]) for e in entries] == [
            ("gunicorn.error", "gunicorn says hi", None), ("fhirportal.test.gunicorn", "the app says hi", request_id),
            ("fhirportal.test.gunicorn", "after the reload", None)]
    else:
        assert lines[0].endswith("[INFO] [-] gunicorn.error: gunicorn says hi")
        assert lines[1].endswith(f"[WARNING] [{request_id}] fhirportal.test.gunicorn: the app says hi")
