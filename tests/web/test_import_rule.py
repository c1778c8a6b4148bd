"""The portal is a SMART client of the FHIR API: nothing in ``fhirportal.web`` may import the store
(or any layer that reads the database: fhir, smart, portal, bulk), nor a database library. It imports
only the standard library, its web framework and cryptography, the settings, and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

WEB = Path(__file__).resolve().parents[2] / "fhirportal" / "web"
ALLOWED_THIRD_PARTY = {"flask", "werkzeug", "jinja2", "markupsafe", "cryptography"}
ALLOWED_PROJECT = {"fhirportal.web", "fhirportal.settings", "fhirportal.errors"}


def _imports(path: Path) -> list[str]:
    """Absolute names of every module a file imports (relative imports resolved)."""
    package = "fhirportal.web" + ("" if path.name == "__init__.py" else "")
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                names.append(f"{base}.{node.module}" if node.module else base)
            else:
                names.append(node.module)
    return names


def _allowed(name: str) -> bool:
    top = name.split(".")[0]
    if top == "fhirportal":
        return any(name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED_PROJECT)
    return top == "__future__" or top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY


def test_the_portal_imports_nothing_that_reads_the_database():
    files = sorted(WEB.rglob("*.py"))
    assert len(files) >= 8
    refused = [f"{path.name}: {name}" for path in files for name in _imports(path) if not _allowed(name)]
    assert not refused


def test_the_rule_notices_a_forbidden_import(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("from ..store.database import Database\nimport sqlalchemy\nfrom fhirportal.smart import x\n")
    assert [name for name in _imports(sneaky) if not _allowed(name)] == [
        "fhirportal.store.database", "sqlalchemy", "fhirportal.smart"]
