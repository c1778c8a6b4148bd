"""FHIR's XML format (http://hl7.org/fhir/R4/xml.html), converted to and from the JSON form the server
works in: ``write`` (JSON → XML, ``writer.py``) and ``read`` (XML → JSON, ``reader.py``), both driven
by the R4 definitions' types and element order (``elements.py``); ``xhtml.py`` handles
``Narrative.div`` and ``parser.py`` is the one XML parser, which refuses DTDs and entities.
"""

from .parser import XmlProblem
from .reader import read
from .writer import write

__all__ = ["XmlProblem", "read", "write"]
