"""Portal PINs (access codes) and registration links.

A PIN is read out or printed at the visit, so it is short and unambiguous: 7 characters from a
31-symbol alphabet without look-alikes (0/O, 1/I/L), shown as ``ABCD-EFG`` — 34.7 bits, more than
6 random alphanumerics (31 bits, NIST SP 800-63A's floor for an enrollment code). Staff can look
a PIN up, so it is stored encrypted (Fernet, key derived from ``FHIRPORTAL_SECRET_KEY``; several keys
while one is rotated out), and
verified against a keyed hash (HMAC-SHA256) in constant time. Registration links carry a 256-bit
random token stored only as a SHA-256 digest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
PIN_LENGTH = 7


def new_pin() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(PIN_LENGTH))


def normalize(pin: str) -> str:
    """What the person typed, as stored: case, spaces and dashes do not matter."""
    return "".join(ch for ch in pin.upper() if ch.isalnum())


def display(pin: str) -> str:
    return f"{pin[:4]}-{pin[4:]}"


class PinVault:
    """PINs encrypted and keyed under ``FHIRPORTAL_SECRET_KEY``: given several keys (newest first), new
    values use the newest, and values made under an older key still decrypt and match until
    ``reencrypt`` has moved them (``fhirportal secrets reencrypt``)."""

    def __init__(self, secret_keys: str | tuple[str, ...]):
        keys = (secret_keys,) if isinstance(secret_keys, str) else tuple(secret_keys)
        self._fernets = [Fernet(base64.urlsafe_b64encode(
            hashlib.sha256(b"fhirportal-pin-encryption:" + key.encode()).digest())) for key in keys]
        self._fernet = MultiFernet(self._fernets)
        self._mac_keys = [hashlib.sha256(b"fhirportal-pin-mac:" + key.encode()).digest() for key in keys]

    def encrypt(self, pin: str) -> str:
        return self._fernet.encrypt(pin.encode()).decode()

    def decrypt(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()

    def keyed_hash(self, pin: str) -> str:
        return self._keyed(self._mac_keys[0], pin)

    def matches(self, pin: str, stored_hash: str) -> bool:
        found = False
        for key in self._mac_keys:  # every key compared, in constant time each
            found |= hmac.compare_digest(self._keyed(key, pin), stored_hash)
        return found

    def is_current(self, token: str) -> bool:
        """Whether an encrypted value is under the newest key already."""
        try:
            self._fernets[0].decrypt(token.encode())
        except InvalidToken:
            return False
        return True

    @staticmethod
    def _keyed(key: bytes, pin: str) -> str:
        return hmac.new(key, normalize(pin).encode(), hashlib.sha256).hexdigest()
