"""Loading accounts and registered apps from a JSON file (the demo practice's, see
``fixtures/demo-accounts.json``): ``{"accounts": [...], "clients": [...]}``. Existing usernames and
client ids are left alone, so loading twice changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

from .server import SmartServer

CLIENT_FIELDS = ("client_id", "client_secret")


def load_accounts_file(smart: SmartServer, path: Path) -> tuple[int, int]:
    """(accounts created, clients created)."""
    data = json.loads(Path(path).read_text())
    accounts = clients = 0
    for item in data.get("accounts", []):
        if smart.accounts.by_username(item["username"]) is not None:
            continue
        smart.accounts.create(item["username"], item.get("password"), kind=item["kind"],
                              fhir_user=item.get("fhir_user"), organization=item.get("organization"),
                              roles=tuple(item.get("roles", ())), patients=tuple(item.get("patients", ())))
        accounts += 1
    for item in data.get("clients", []):
        if smart.clients.get(item["client_id"]) is not None:
            continue
        metadata = {k: v for k, v in item.items() if k not in CLIENT_FIELDS}
        smart.clients.register(metadata, client_id=item["client_id"], client_secret=item.get("client_secret"))
        clients += 1
    return accounts, clients
