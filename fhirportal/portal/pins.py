"""Portal PINs (access codes) and registration links.

A PIN is read out or printed at the visit, so it is short and unambiguous: 7 characters from a
31-symbol alphabet without look-alikes (0/O, 1/I/L), shown as ``ABCD-EFG`` — 34.7 bits, more than
6 random alphanumerics (31 bits, NIST SP 800-63A's floor for an enrollment code). Staff can look
a PIN up, so it is stored encrypted (Fernet, key derived from ``FHIRPORTAL_SECRET_KEY``), and
verified against a keyed hash (HMAC-SHA256) in constant time. Registration links carry a 256-bit
random token stored only as a SHA-256 digest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet

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
    def __init__(self, secret_key: str):
        material = hashlib.sha256(b"fhirportal-pin-encryption:" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(material))
        self._mac_key = hashlib.sha256(b"fhirportal-pin-mac:" + secret_key.encode()).digest()

    def encrypt(self, pin: str) -> str:
        return self._fernet.encrypt(pin.encode()).decode()

    def decrypt(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()

    def keyed_hash(self, pin: str) -> str:
        return hmac.new(self._mac_key, normalize(pin).encode(), hashlib.sha256).hexdigest()

    def matches(self, pin: str, stored_hash: str) -> bool:
        return hmac.compare_digest(self.keyed_hash(pin), stored_hash)
