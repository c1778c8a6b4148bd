"""CORS for browser SMART apps: the API, discovery and OAuth endpoints answer any origin; the HTML
pages do not."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("path", ["/fhir/metadata", "/fhir/.well-known/smart-configuration",
                                  "/.well-known/openid-configuration", "/auth/jwks"])
def test_cross_origin_reads_are_allowed(client, path):
    response = client.get(path, headers={"Origin": "https://app.example"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Location" in response.headers["Access-Control-Expose-Headers"]


def test_preflight_of_an_authorized_fhir_call(client):
    response = client.options("/fhir/Patient/p1", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
    token = client.options("/auth/token", headers={"Origin": "https://app.example",
                                                    "Access-Control-Request-Method": "POST"})
    assert token.headers["Access-Control-Allow-Origin"] == "*"


def test_html_pages_and_same_origin_requests_get_no_cors_headers(client):
    assert "Access-Control-Allow-Origin" not in client.get(
        "/auth/apps", headers={"Origin": "https://app.example"}).headers
    assert "Access-Control-Allow-Origin" not in client.get("/fhir/metadata").headers
