"""A patient signing in to an app, the app using and refreshing its token, another account locked: what the
log and metrics tests watch."""

from __future__ import annotations

import base64

from tests.smart import flows
from tests.support import Fhir, patient


def sign_in_and_use_an_app(app, client, fhir) -> tuple[dict[str, str], set[str]]:
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
