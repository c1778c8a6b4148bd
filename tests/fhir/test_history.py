"""history at instance, type and system level, with _since, _count and cursor paging."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.support import patient


def _follow(fhir, url: str):
    parts = urlsplit(url)
    return fhir.get(parts.path + ("?" + parts.query if parts.query else ""))


def _links(bundle) -> dict:
    return {link["relation"]: link["url"] for link in bundle["link"]}


def test_instance_history_newest_first_with_total(fhir):
    created = fhir.create(patient())
    path = f"Patient/{created['id']}"
    fhir.put(path, dict(created, gender="male"))
    fhir.put(path, dict(created, gender="other"))
    bundle = fhir.get(f"{path}/_history").get_json()
    assert bundle["type"] == "history"
    assert bundle["total"] == 3
    versions = [e["resource"]["meta"]["versionId"] for e in bundle["entry"]]
    assert versions == ["3", "2", "1"]
    assert [e["request"]["method"] for e in bundle["entry"]] == ["PUT", "PUT", "POST"]
    assert bundle["entry"][0]["response"]["etag"] == 'W/"3"'
    assert bundle["entry"][0]["fullUrl"] == f"http://localhost/fhir/{path}"


def test_instance_history_of_unknown_is_404(fhir):
    assert fhir.get("Patient/nobody/_history").status_code == 404


def test_type_and_system_history(fhir):
    first = fhir.create(patient())
    fhir.create({"resourceType": "Practitioner", "name": [{"family": "Osler"}]})
    fhir.put(f"Patient/{first['id']}", dict(first, gender="male"))
    type_history = fhir.get("Patient/_history").get_json()
    assert len(type_history["entry"]) == 2
    assert {e["resource"]["resourceType"] for e in type_history["entry"]} == {"Patient"}
    system = fhir.get("_history").get_json()
    assert len(system["entry"]) == 3


def test_history_paging_walks_every_version_once_even_while_data_changes(fhir):
    ids = [fhir.create(patient())["id"] for _ in range(7)]
    page = fhir.get("Patient/_history?_count=3").get_json()
    seen = [e["resource"]["id"] for e in page.get("entry", [])]
    assert _links(page)["self"].endswith("_count=3")
    # a write between pages must not shift or repeat what later pages hold
    fhir.create(patient())
    while "next" in _links(page):
        page = _follow(fhir, _links(page)["next"]).get_json()
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen))


def test_since_filters_history(fhir):
    old = fhir.create(patient())
    cut = fhir.get(f"Patient/{old['id']}").get_json()["meta"]["lastUpdated"]
    import time

    time.sleep(0.01)
    newer = fhir.create(patient())
    bundle = fhir.get("Patient/_history", query_string={"_since": cut}).get_json()
    ids = {e["resource"]["id"] for e in bundle["entry"]}
    assert newer["id"] in ids
    later = fhir.get("Patient/_history", query_string={"_since": "2999-01-01T00:00:00Z"}).get_json()
    assert "entry" not in later


def test_bad_history_parameters_are_400(fhir):
    assert fhir.get("_history?_since=yesterday").status_code == 400
    assert fhir.get("_history?_count=-1").status_code == 400
    assert fhir.get("_history?_cursor=@@@").status_code == 400


def test_count_above_the_maximum_is_refused_not_capped(fhir, settings):
    """A _count beyond max_page_size is a 400 naming the maximum (tests/fhir/test_limits.py has the rest)."""
    fhir.create(patient())
    response = fhir.get(f"_history?_count={settings.max_page_size * 10}")
    assert response.status_code == 400
    assert str(settings.max_page_size) in response.get_json()["issue"][0]["diagnostics"]
    assert len(fhir.get(f"_history?_count={settings.max_page_size}").get_json()["entry"]) == 1
