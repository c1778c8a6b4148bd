"""What the terminology operations share: the (system, code) a request names, as ``system`` and
``code`` parameters or as a Coding."""

from __future__ import annotations

from fhirportal.errors import BadRequest

from .parameters import OperationInput


def system_and_code(given: OperationInput, code_name: str, coding_name: str,
                    system: str | None = None) -> tuple[str, str]:
    """(system, code) from the ``code_name`` parameter and ``system``, or from the ``coding_name``
    Coding (whose system must then agree with ``system``); 400 if either is missing."""
    coding = given.get(coding_name)
    if coding is not None:
        if given.has(code_name):
            raise BadRequest(f"Give either '{code_name}' or '{coding_name}', not both", expression=coding_name)
        code, coding_system = coding.get("code"), coding.get("system")
        if system and coding_system and coding_system != system:
            raise BadRequest(f"The system of '{coding_name}' ({coding_system}) is not {system}", expression=coding_name)
        system = coding_system or system
    else:
        code = given.get(code_name)
    if not code:
        raise BadRequest(f"A code is needed: '{code_name}' (with a system) or '{coding_name}'", expression=code_name)
    if not system:
        raise BadRequest(f"The code '{code}' needs its system", expression="system")
    return system, code
