"""Compiling every US Core profile, and what the compiled profiles say they do not check."""

from __future__ import annotations

import copy

import pytest

from fhirportal.definitions.packages import package
from fhirportal.fhir.profiles import ProfileRegistry, UnknownProfile, registry
from fhirportal.fhir.profiles.compiler import CompileError, compile_profile
from fhirportal.fhir.profiles.plan import elements

BASE = "http://hl7.org/fhir/StructureDefinition/"
SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"


def test_every_profile_compiles():
    definitions = package().of_type("StructureDefinition")
    assert len(registry().urls()) == len(definitions) == 59
    for url in registry().urls():
        profile = registry().profile(url)
        assert profile.root.path == profile.type == registry().definitions[url]["type"]
        assert registry().profile(url) is profile  # compiled once


def test_what_is_not_checked_is_listed():
    """Every construct the validator leaves unchecked, over all 59 profiles: exactly these (a new kind, such
    as an unsupported discriminator or an uncompilable invariant, fails here)."""
    found = {(note.construct, note.detail) for url in registry().urls() for note in registry().profile(url).unsupported}
    outside = {f"{BASE}condition-assertedDate", f"{BASE}display", f"{BASE}ordinalValue",
               f"{BASE}questionnaireresponse-completionMode", f"{BASE}questionnaireresponse-signature",
               f"{SDC}sdc-questionnaire-itemAnswerMedia", f"{SDC}sdc-questionnaire-itemMedia"}
    assert {(c, d) for c, d in found if c != "canonical targetProfile"} == {
        ("type profile outside the package", f"{BASE}SimpleQuantity on Quantity: its rules are not checked"),
        ("targetProfile outside the package", f"{BASE}vitalsigns: this element's reference targets are not checked"),
        *{("extension definition outside the package", f"{url}: only its url and cardinality are checked")
          for url in outside},
    }
    # canonical elements (instantiatesCanonical, QuestionnaireResponse.questionnaire): a url does not say a type
    assert {d.rpartition(":")[2] for c, d in found if c == "canonical targetProfile"} == {
        " a canonical url does not say its type"}


def test_every_us_core_invariant_is_compiled():
    """All of US Core's own invariants run on the compiled evaluator (fhirpathpy is the fallback)."""
    keys = {(invariant.key, invariant.compiled) for url in registry().urls()
            for element in elements(registry().profile(url).root) for invariant in element.invariants}
    assert {key for key, _ in keys} == {f"us-core-{n}" for n in range(1, 22) if n not in (11, 12)}
    assert all(compiled for _, compiled in keys)


def test_slicing_lookup_by_url():
    """Extension slicings are told apart by a dictionary lookup of the url."""
    patient = registry().profile(US_CORE + "us-core-patient")
    extension = next(child for child in patient.root.children if child.name == "extension")
    steps, lookup = extension.slicing.lookup
    assert steps == ("url",)
    assert lookup[US_CORE + "us-core-race"] == 0 and len(lookup) == 6


def test_unknown_profile():
    with pytest.raises(UnknownProfile) as raised:
        registry().validate({"resourceType": "Patient"}, "http://example.org/StructureDefinition/nothing")
    assert raised.value.status == 400 and raised.value.url == "http://example.org/StructureDefinition/nothing"
    assert raised.value.issues[0].to_fhir()["code"] == "not-supported"


def test_versioned_url():
    assert registry().profile(US_CORE + "us-core-patient|6.1.0") is registry().profile(US_CORE + "us-core-patient")
    with pytest.raises(UnknownProfile):
        registry().profile(US_CORE + "us-core-patient|5.0.1")


def test_resource_of_another_type():
    issues = registry().validate({"resourceType": "Observation"}, US_CORE + "us-core-patient")
    assert [(i.expression, i.diagnostics) for i in issues] == [
        ("Observation", "Observation: is not a Patient (us-core-patient: the profile constrains Patient)")]


def test_an_element_without_its_parent_is_refused():
    definition = copy.deepcopy(package().by_url[US_CORE + "us-core-patient"])
    definition["snapshot"]["element"] = [e for e in definition["snapshot"]["element"] if e["id"] != "Patient.telecom"]
    with pytest.raises(CompileError, match="Patient.telecom.id has no parent Patient.telecom"):
        compile_profile(definition, {})


def test_unknown_element_properties_are_listed():
    definition = copy.deepcopy(package().by_url[US_CORE + "us-core-patient"])
    next(e for e in definition["snapshot"]["element"] if e["id"] == "Patient.birthDate")["maxLength"] = 10
    profile = ProfileRegistry([definition]).profile(definition["url"])
    assert ("Patient.birthDate", "ElementDefinition.maxLength", "not checked") in {
        (note.element, note.construct, note.detail) for note in profile.unsupported}


def test_a_choice_slice_without_slicing_is_type_slicing():
    """R4 lets a profile constrain ``value[x]:valueQuantity`` without declaring the slicing: by type."""
    definition = copy.deepcopy(package().by_url[US_CORE + "us-core-heart-rate"])
    del next(e for e in definition["snapshot"]["element"] if e["id"] == "Observation.value[x]")["slicing"]
    profile = ProfileRegistry([definition]).profile(definition["url"])
    value = next(child for child in profile.root.children if child.name == "value[x]")
    assert value.slicing.discriminators == (("type", "$this"),)
    assert [t.expected for s in value.slicing.slices for t in s.tests] == [frozenset({"Quantity"})]


def test_reslicing_is_listed():
    definition = copy.deepcopy(package().by_url[US_CORE + "us-core-blood-pressure"])
    elements = definition["snapshot"]["element"]
    systolic = next(i for i, e in enumerate(elements) if e["id"] == "Observation.component:systolic")
    elements.insert(systolic + 1, {**elements[systolic], "id": "Observation.component:systolic/home",
                                   "sliceName": "systolic/home"})
    profile = ProfileRegistry([definition]).profile(definition["url"])
    assert ("Observation.component:systolic/home", "re-slicing", "a slice of a slice is not checked") in {
        (note.element, note.construct, note.detail) for note in profile.unsupported}
