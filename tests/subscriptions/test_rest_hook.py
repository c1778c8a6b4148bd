"""Subscriptions with the rest-hook channel: accepted with checked criteria and endpoint, matched in each
write's transaction (its notifications commit or roll back with it) with the owner's visibility, delivered
to a loopback receiver (retried, surviving a restart, never posted twice at once), by staff and system
tokens only."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from fhirportal import subscriptions
from fhirportal.app import build_context, create_app
from fhirportal.settings import Settings
from fhirportal.store import clock
from fhirportal.store.subscription_schema import subscription_delivery
from fhirportal.subscriptions import rules
from tests.subscriptions.receiver import Receiver
from tests.support import Fhir

ORG = "Organization/practice"


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def deliveries(app):
    return app.extensions["subscriptions"]


def subscription(endpoint: str, criteria: str = f"Communication?recipient={ORG}", payload: str | None = None,
                 **extra) -> dict:
    channel = {"type": "rest-hook", "endpoint": endpoint, "header": ["Authorization: Bearer ehr-secret",
                                                                     "X-Practice: north"]}
    if payload is not None:
        channel["payload"] = payload
    return {"resourceType": "Subscription", "status": "requested", "reason": "Tell the EHR", "criteria": criteria,
            "channel": channel, **extra}


def communication(recipient: str = ORG, **extra) -> dict:
    return {"resourceType": "Communication", "status": "completed", "recipient": [{"reference": recipient}],
            "payload": [{"contentString": "Can I move my appointment?"}], **extra}


@pytest.fixture
def practice(fhir):
    fhir.put(ORG, {"resourceType": "Organization", "id": "practice", "name": "North practice"})
    fhir.put("Organization/other", {"resourceType": "Organization", "id": "other", "name": "Elsewhere"})


def _time_passes(ctx) -> None:
    """Every retry is due now (rather than after its backoff)."""
    with ctx.database.write() as conn:
        conn.execute(update(subscription_delivery).where(subscription_delivery.c.due_at.is_not(None))
                     .values(due_at=clock.now()))


# ---------------------------------------------------------------------- delivery
def test_a_matching_write_posts_the_resource_with_the_channel_headers(fhir, practice, receiver, deliveries):
    created = fhir.create(subscription(receiver.url(), payload="application/fhir+json"))
    assert created["status"] == "active"  # requested → active once accepted
    message = fhir.create(communication())
    assert deliveries.run_due() == 1
    [post] = receiver.received
    assert post.path == "/hooks/ehr"
    assert post.headers["Authorization"] == "Bearer ehr-secret"
    assert post.headers["X-Practice"] == "north"
    assert post.headers["Content-Type"].startswith("application/fhir+json")
    sent = json.loads(post.body)
    assert (sent["resourceType"], sent["id"], sent["meta"]["versionId"]) == ("Communication", message["id"], "1")
    assert deliveries.queue.pending() == []  # delivered rows go
    assert deliveries.run_due() == 0


def test_a_ping_has_no_body_and_an_update_notifies_again(fhir, practice, receiver, deliveries):
    fhir.create(subscription(receiver.url("/ping"), criteria="Appointment?status=proposed"))
    location = fhir.create({"resourceType": "Location", "name": "North practice"})
    appointment = fhir.create({"resourceType": "Appointment", "status": "proposed", "participant": [
        {"actor": {"reference": f"Location/{location['id']}"}, "status": "needs-action"}]})
    appointment["comment"] = "Mornings please"
    assert fhir.put(f"Appointment/{appointment['id']}", appointment).status_code == 200
    assert deliveries.run_due() == 2
    assert [(p.path, p.body) for p in receiver.received] == [("/ping", b""), ("/ping", b"")]
    appointment["status"] = "booked"  # no longer matches
    assert fhir.put(f"Appointment/{appointment['id']}", appointment).status_code == 200
    assert deliveries.run_due() == 0


def test_a_write_that_does_not_match_notifies_nothing(fhir, practice, receiver, deliveries):
    fhir.create(subscription(receiver.url()))
    fhir.create(communication("Organization/other"))
    fhir.create({"resourceType": "Patient", "name": [{"family": "Unrelated"}]})
    assert deliveries.queue.pending() == []
    assert deliveries.run_due() == 0
    assert receiver.received == []


def test_a_transaction_notifies_each_matching_entry(fhir, practice, receiver, deliveries):
    fhir.create(subscription(receiver.url()))
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": communication(), "request": {"method": "POST", "url": "Communication"}},
        {"resource": communication("Organization/other"), "request": {"method": "POST", "url": "Communication"}},
        {"resource": communication(), "request": {"method": "POST", "url": "Communication"}}]}
    assert fhir.post("/fhir", bundle).status_code == 200
    assert deliveries.run_due() == 2
    assert len(receiver.received) == 2


def test_a_subscription_that_is_off_or_deleted_notifies_nothing(fhir, practice, receiver, deliveries):
    off = fhir.create(subscription(receiver.url("/off"), status="off"))
    assert off["status"] == "off"
    doomed = fhir.create(subscription(receiver.url("/deleted")))
    fhir.create(communication())  # enqueued for the deleted one …
    assert fhir.delete(f"Subscription/{doomed['id']}").status_code in (200, 204)
    fhir.create(communication())  # … and this one is not
    assert len(deliveries.queue.pending()) == 1
    assert deliveries.run_due() == 1  # handled: dropped, the Subscription is gone
    assert receiver.received == []
    assert deliveries.queue.pending() == []


def test_an_unreachable_endpoint_is_retried_with_backoff_and_marks_the_subscription(fhir, practice, deliveries):
    receiver = Receiver()
    port = receiver.port
    receiver.stop()  # the EHR is down
    created = fhir.create(subscription(receiver.url()))
    fhir.create(communication())
    assert deliveries.run_due() == 1
    [row] = deliveries.queue.pending()
    assert row.attempts == 1 and "could not be reached" in row.last_error
    assert clock.ensure_utc(row.due_at) > clock.now()  # not before the backoff
    assert deliveries.run_due() == 0
    marked = fhir.get(f"Subscription/{created['id']}").get_json()
    assert marked["status"] == "error" and "could not be reached" in marked["error"]

    back = Receiver(port=port)  # the EHR is back
    try:
        _time_passes(deliveries.worker.ctx)
        assert deliveries.run_due() == 1
        assert len(back.received) == 1
        assert deliveries.queue.pending() == []
        healed = fhir.get(f"Subscription/{created['id']}").get_json()
        assert healed["status"] == "active" and "error" not in healed
    finally:
        back.stop()


def test_after_the_last_attempt_the_row_is_kept_and_no_longer_due(fhir, practice, ctx, deliveries):
    receiver = Receiver(status=500)
    try:
        fhir.create(subscription(receiver.url()))
        fhir.create(communication())
        for _ in range(ctx.settings.subscription_max_attempts):
            _time_passes(ctx)
            assert deliveries.run_due() == 1
        _time_passes(ctx)
        assert deliveries.run_due() == 0
        [row] = deliveries.queue.pending()
        assert row.due_at is None and row.attempts == ctx.settings.subscription_max_attempts
        assert "HTTP 500" in row.last_error
        assert len(receiver.received) == ctx.settings.subscription_max_attempts
    finally:
        receiver.stop()


def test_pending_notifications_survive_a_restart(fhir, practice, receiver, settings):
    fhir.create(subscription(receiver.url(), payload="application/fhir+json"))
    message = fhir.create(communication())
    # A new process on the same database (nothing delivered by the first one).
    restarted = build_context(settings)
    try:
        fresh = subscriptions.install(restarted, start=False)
        assert fresh.run_due() == 1
    finally:
        restarted.database.dispose()
    [post] = receiver.received
    assert json.loads(post.body)["id"] == message["id"]


def test_a_restarted_server_delivers_pending_notifications_once_it_serves(fhir, practice, receiver, settings):
    fhir.create(subscription(receiver.url()))
    fhir.create(communication())
    restarted = create_app(settings.with_overrides(subscription_worker=True), create_schema=False)
    worker = restarted.extensions["subscriptions"].worker
    try:
        assert not worker.running  # nothing runs before the node serves
        assert restarted.test_client().get("/fhir/metadata").status_code == 200
        assert len(receiver.wait_for(1, timeout=10)) == 1
    finally:
        assert worker.stop(10)
        restarted.extensions["fhirportal"].database.dispose()


def test_one_due_row_is_posted_once_by_two_concurrent_passes(fhir, practice, deliveries):
    receiver = Receiver(delay=0.5)  # slow: both passes run while the first POST is in flight
    try:
        fhir.create(subscription(receiver.url()))
        fhir.create(communication())
        results: list[int] = []
        start = threading.Barrier(2)

        def one_pass():
            start.wait()
            results.append(deliveries.run_due())

        threads = [threading.Thread(target=one_pass) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert sorted(results) == [0, 1]
        assert len(receiver.received) == 1
    finally:
        receiver.stop()


def test_the_worker_thread_delivers_within_seconds_of_the_commit_and_then_ends(fhir, practice, receiver, deliveries,
                                                                                 monkeypatch):
    monkeypatch.setattr(deliveries.worker, "enabled", True)  # as in production (the tests' settings: off)
    try:
        fhir.create(subscription(receiver.url()))
        fhir.create(communication())  # the commit starts the thread
        assert len(receiver.wait_for(1, timeout=10)) == 1
        deadline = time.monotonic() + 10
        while deliveries.worker.running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not deliveries.worker.running  # nothing left to deliver: the thread ended
        fhir.create(communication())  # started again
        assert len(receiver.wait_for(2, timeout=10)) == 2
    finally:
        assert deliveries.worker.stop(10)
    assert deliveries.queue.pending() == []


# ---------------------------------------------------------------------- what is accepted
@pytest.mark.parametrize("endpoint", [
    "https://ehr.example.org/hooks/",  # not among the allowed prefixes
    "http://169.254.169.254/latest/meta-data",
    "http://127.0.0.1:80@evil.example/hooks",  # user info: the host is evil.example
    "ftp://127.0.0.1:21/hooks",
])
def test_an_endpoint_the_administrator_did_not_allow_is_refused(fhir, endpoint):
    answer = fhir.post("Subscription", subscription(endpoint))
    assert answer.status_code == 422, answer.get_json()
    assert answer.get_json()["issue"][0]["expression"] == ["Subscription.channel.endpoint"]


@pytest.mark.parametrize("criteria, named", [
    ("Communication?bogus=1", "bogus"),
    ("Communication?recipient:foo=Organization/x", "recipient"),
    ("Nonsense?status=active", "Nonsense"),
    ("Communication?_count=10", "_count"),
    ("Subscription?status=active", "Subscription"),
])
def test_criteria_the_server_cannot_search_are_refused_naming_the_parameter(fhir, criteria, named):
    answer = fhir.post("Subscription", subscription("http://127.0.0.1:9/hooks", criteria=criteria))
    assert answer.status_code == 422, answer.get_json()
    issue = answer.get_json()["issue"][0]
    assert named in issue["diagnostics"]
    assert issue["expression"] == ["Subscription.criteria"]


def test_only_the_rest_hook_channel_and_json_payloads_are_supported(fhir):
    body = subscription("http://127.0.0.1:9/hooks")
    body["channel"]["type"] = "websocket"
    answer = fhir.post("Subscription", body)
    assert answer.status_code == 422 and answer.get_json()["issue"][0]["code"] == "not-supported"
    answer = fhir.post("Subscription", subscription("http://127.0.0.1:9/hooks", payload="application/fhir+xml"))
    assert answer.status_code == 422 and answer.get_json()["issue"][0]["code"] == "not-supported"
    body = subscription("http://127.0.0.1:9/hooks")
    body["channel"]["header"] = ["Injected\r\nHost: evil"]
    assert fhir.post("Subscription", body).status_code == 422


def test_an_update_and_a_patch_are_checked_too(fhir):
    created = fhir.create(subscription("http://127.0.0.1:9/hooks"))
    moved = {**created, "channel": {**created["channel"], "endpoint": "https://elsewhere.example/"}}
    assert fhir.put(f"Subscription/{created['id']}", moved).status_code == 422
    patched = fhir.patch(f"Subscription/{created['id']}", [
        {"op": "replace", "path": "/criteria", "value": "Communication?bogus=1"}])
    assert patched.status_code == 422
    turned_off = fhir.patch(f"Subscription/{created['id']}", [{"op": "replace", "path": "/status", "value": "off"}])
    assert turned_off.status_code == 200 and turned_off.get_json()["status"] == "off"


# ---------------------------------------------------------------------- who may
def test_a_patient_token_may_not_manage_or_see_subscriptions(client, ctx, fhir):
    created = fhir.create(subscription("http://127.0.0.1:9/hooks"))
    patient = Fhir(client, ctx.tokens.mint(client_id="app", scope="patient/*.cruds", context={"patient": "p1"}))
    answer = patient.post("Subscription", subscription("http://127.0.0.1:9/hooks"))
    assert answer.status_code == 403
    assert patient.get(f"Subscription/{created['id']}").status_code == 403
    assert patient.get("Subscription").status_code == 403


def test_a_staff_token_may_and_its_subscriptions_see_only_what_it_may(client, ctx, fhir, receiver, deliveries):
    fhir.put(ORG, {"resourceType": "Organization", "id": "practice", "name": "North practice"})
    fhir.put("Organization/other", {"resourceType": "Organization", "id": "other", "name": "Elsewhere"})
    staff = Fhir(client, ctx.tokens.mint(client_id="app", scope="user/Subscription.cruds user/Patient.rs",
                                         context={"organization": ORG}))
    created = staff.post("Subscription", subscription(receiver.url(), criteria="Patient?gender=female"))
    assert created.status_code == 201, created.get_json()
    assert staff.post("Subscription", subscription(receiver.url())).status_code == 403  # may not search it
    fhir.create({"resourceType": "Patient", "gender": "female", "managingOrganization": {"reference": ORG}})
    fhir.create({"resourceType": "Patient", "gender": "female",
                 "managingOrganization": {"reference": "Organization/other"}})  # not the staff member's
    assert deliveries.run_due() == 1
    [post] = receiver.received
    assert post.body == b""


def test_the_capability_statement_says_what_subscriptions_are(fhir):
    statement = fhir.get("metadata").get_json()
    [entry] = [r for r in statement["rest"][0]["resource"] if r["type"] == "Subscription"]
    assert "rest-hook" in entry["documentation"]


def test_a_claim_whose_lease_ran_out_is_taken_over_and_the_old_claim_changes_nothing(fhir, practice, ctx, deliveries):
    fhir.create(subscription("http://127.0.0.1:9/hooks"))
    fhir.create(communication())
    queue = deliveries.queue
    [first] = queue.claim(now=clock.now())
    assert queue.claim() == []  # held
    [second] = queue.claim(now=clock.now() + timedelta(minutes=5))  # the first worker hung past its lease
    assert second.id == first.id and second.claim != first.claim
    assert not queue.delivered(first)  # the hung worker's bookkeeping no longer applies
    assert queue.delivered(second)
    assert queue.pending() == []


def test_the_allowed_endpoints_are_a_list_in_the_environment():
    settings = Settings.from_env({"FHIRPORTAL_SUBSCRIPTION_ENDPOINTS": "https://ehr.example.org/hooks/, "
                                                                      "https://backup.example.org/hooks/"})
    assert settings.subscription_endpoints == ("https://ehr.example.org/hooks/", "https://backup.example.org/hooks/")
    assert Settings.from_env({}).subscription_endpoints == ()
    assert not rules.endpoint_allowed("https://ehr.example.org.evil.example/hooks/", settings.subscription_endpoints)
    assert rules.endpoint_allowed("https://ehr.example.org/hooks/north", settings.subscription_endpoints)
    assert not rules.endpoint_allowed("http://ehr.example.org/hooks/north", settings.subscription_endpoints)


def test_the_subscription_of_a_disabled_app_notifies_nothing_until_it_is_enabled(client, ctx, app, practice,
                                                                                 receiver, deliveries):
    from fhirportal.smart.admin import Admin

    smart = app.extensions["smart"]
    ehr, _ = smart.clients.register({"client_name": "EHR", "grant_types": ["client_credentials"],
                                     "token_endpoint_auth_method": "private_key_jwt",
                                     "jwks_uri": "https://ehr.example.org/jwks.json"})
    owner = Fhir(client, ctx.tokens.mint(client_id=ehr.client_id, scope="system/*.cruds"))
    owner.create(subscription(receiver.url()))
    admin = Admin(smart, ctx.audit)
    admin.set_app_enabled(ehr.client_id, False)
    writer = Fhir(client, ctx.tokens.mint(client_id="another-app", scope="system/*.cruds"))
    writer.create(communication())
    assert deliveries.run_due() == 0 and receiver.received == []
    admin.set_app_enabled(ehr.client_id, True)
    writer.create(communication())
    assert deliveries.run_due() == 1 and len(receiver.received) == 1


# ---------------------------------------------------------------------- atomicity
def test_notifications_are_enqueued_in_the_write_transaction_and_roll_back_with_it(fhir, practice, ctx, deliveries):
    """Matching runs before the commit, on the write's connection: a write rolled back after matching (here
    a later pre-commit hook fails) leaves neither the resource nor its delivery row."""
    fhir.create(subscription("http://127.0.0.1:9/hooks"))
    seen = []

    def fail(conn, records):  # after the matcher: its row is there, in the write's transaction
        seen.append(conn.execute(select(func.count()).select_from(subscription_delivery)).scalar())
        raise RuntimeError("the commit never happens")

    ctx.before_commit.append(fail)
    try:
        response = fhir.post("Communication", communication())
    finally:
        ctx.before_commit.remove(fail)
    assert response.status_code == 500
    assert seen == [1]
    assert deliveries.queue.pending() == []
    assert fhir.get("Communication").json.get("total", 0) == 0


def test_a_committed_write_has_its_delivery_row_even_if_the_post_commit_wake_never_runs(fhir, practice, ctx,
                                                                                       deliveries, monkeypatch):
    fhir.create(subscription("http://127.0.0.1:9/hooks"))
    woken = []
    monkeypatch.setattr(deliveries.matcher, "wake", lambda: woken.append(True))
    monkeypatch.setattr(ctx, "committed", lambda records: None)  # the process "dies" right after the commit
    message = fhir.create(communication())
    assert woken == []
    [row] = deliveries.queue.pending()
    assert (row.resource_type, row.fhir_id, row.version_id) == ("Communication", message["id"], 1)
    monkeypatch.undo()
    fhir.create(communication())  # an ordinary write: enqueued, then the worker woken after the commit
    assert woken == [] and len(deliveries.queue.pending()) == 2


def test_the_wake_follows_only_a_commit_that_enqueued(fhir, practice, deliveries, monkeypatch):
    woken = []
    monkeypatch.setattr(deliveries.matcher, "wake", lambda: woken.append(True))
    fhir.create(communication())  # no Subscription: nothing enqueued, nothing to wake
    assert woken == []
    fhir.create(subscription("http://127.0.0.1:9/hooks"))
    fhir.create(communication())
    assert woken == [True]
