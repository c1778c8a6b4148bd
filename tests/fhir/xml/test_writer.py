"""The XML writer on what stored and server-made JSON can hold: stored text spliced in (``Raw``),
decimals as written, text XML attributes would change, narratives that are not standalone XHTML, and
elements R4 does not define."""

from __future__ import annotations

from fhirportal.fhir import jsontext, xml
from fhirportal.fhir.xml.xhtml import div_to_xml

HEAD = '<?xml version="1.0" encoding="UTF-8"?><Patient xmlns="http://hl7.org/fhir">'


def test_stored_text_is_parsed_with_its_decimals_as_written():
    stored = '{"resourceType":"Observation","status":"final","valueQuantity":{"value":6.10,"unit":"%"}}'
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": 1,
              "entry": [{"fullUrl": "http://x/Observation/1", "resource": jsontext.Raw(stored)}]}
    written = xml.write(bundle)
    assert '<resource><Observation><status value="final"/><valueQuantity><value value="6.10"/>' in written
    assert xml.write(stored).endswith('<valueQuantity><value value="6.10"/><unit value="%"/></valueQuantity>'
                                      "</Observation>")


def test_values_are_written_as_their_json_text():
    written = xml.write({"resourceType": "Observation", "status": "final", "valueQuantity": {"value": 0.1},
                         "component": [{"code": {"text": "c"}, "valueInteger": -3},
                                       {"code": {"text": "c"}, "valueBoolean": False}]})
    assert '<value value="0.1"/>' in written
    assert '<valueInteger value="-3"/>' in written and '<valueBoolean value="false"/>' in written


def test_attribute_text_survives_xml_attribute_normalisation():
    text = 'a\tb\r\nc "quoted" <tag> & more'
    written = xml.write({"resourceType": "Patient", "name": [{"text": text}]})
    assert 'value="a&#9;b&#13;&#10;c &quot;quoted&quot; &lt;tag&gt; &amp; more"' in written
    assert xml.read(written.encode())["name"][0]["text"] == text


def test_characters_xml_cannot_hold_become_replacement_characters():
    written = xml.write({"resourceType": "Patient", "name": [{"text": "bell\x07 \ud800 end"}]})
    assert xml.read(written.encode())["name"][0]["text"] == "bell\ufffd \ufffd end"


def test_an_empty_resource_is_an_empty_element():
    assert xml.write({"resourceType": "Patient"}) == HEAD[:-1] + "/>"


def test_standalone_div_goes_in_as_it_is():
    div = '<div xmlns="http://www.w3.org/1999/xhtml"><p>x &amp; y</p></div>'
    assert div_to_xml(div) == div


def test_div_without_its_namespace_gets_it():
    assert div_to_xml("<div><p class='c'>x</p><br/></div>") == \
        '<div xmlns="http://www.w3.org/1999/xhtml"><p class="c">x</p><br/></div>'


def test_div_that_is_not_xml_becomes_escaped_text():
    for broken in ("<div>a<br></div>", "plain text & more", "<div>&nbsp;</div>", "<p>not a div</p>",
                   '<!DOCTYPE div [<!ENTITY e "x">]><div>&e;</div>'):
        written = div_to_xml(broken)
        assert written.startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
        document = f'{HEAD}<text><status value="generated"/>{written}</text></Patient>'
        assert xml.read(document.encode())["text"]["div"] == written  # a readable document


def test_pretty_output_leaves_the_div_alone():
    div = '<div xmlns="http://www.w3.org/1999/xhtml"><p>a</p>\n<p>b</p></div>'
    written = xml.write({"resourceType": "Patient", "text": {"status": "generated", "div": div}}, pretty=True)
    assert f"\n    {div}\n" in written


def test_elements_r4_does_not_define_are_written_after_the_defined_ones():
    """An R4B-only choice type (Extension.valueCodeableReference) can pass the R4B models' validation."""
    patient = {"resourceType": "Patient", "extension": [
        {"url": "http://example.org/x", "valueCodeableReference": {"concept": {"text": "t"}}}], "active": True}
    written = xml.write(patient)
    assert ('<extension url="http://example.org/x"><valueCodeableReference><concept><text value="t"/></concept>'
            "</valueCodeableReference></extension><active value=\"true\"/>") in written


def test_primitive_arrays_align_values_and_extensions():
    name = {"given": ["a", None], "_given": [None, {"id": "x"}]}
    written = xml.write({"resourceType": "Patient", "name": [name]})
    assert '<name><given value="a"/><given id="x"/></name>' in written
