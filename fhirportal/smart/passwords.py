"""Password rules for portal accounts (NIST SP 800-63B: a minimum length and a check against
commonly used passwords, no composition rules)."""

from __future__ import annotations

from pathlib import Path

MIN_LENGTH = 8
COMMON = frozenset(
    line.strip().lower()
    for line in (Path(__file__).with_name("common-passwords.txt")).read_text().splitlines()
    if line.strip() and not line.startswith("#")
)


def problem(password: str, username: str = "") -> str | None:
    """Why this password is refused, or None."""
    if len(password) < MIN_LENGTH:
        return f"The password needs at least {MIN_LENGTH} characters."
    if len(password) > 256:
        return "The password is too long (256 characters at most)."
    lowered = password.lower()
    if lowered in COMMON or len(set(lowered)) <= 2:
        return "That password is too common; choose another."
    if username and lowered == username.lower():
        return "The password cannot be your user name."
    return None
