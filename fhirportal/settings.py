"""One settings object, built from the environment.

Every knob the server has lives here; nothing else reads ``os.environ``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

DEFAULT_DATA_DIR = Path("var")


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Server configuration. See README "Configuration" for each variable."""

    database_url: str = f"sqlite:///{DEFAULT_DATA_DIR / 'fhirportal.db'}"
    base_url: str = "http://127.0.0.1:8080/fhir"
    max_body_bytes: int = 10 * 1024 * 1024
    default_page_size: int = 50
    max_page_size: int = 1000
    validate_references: bool = True
    benchmark_routes: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        defaults = cls()
        return cls(
            database_url=env.get("FHIRPORTAL_DATABASE_URL") or defaults.database_url,
            base_url=(env.get("FHIRPORTAL_BASE_URL") or defaults.base_url).rstrip("/"),
            max_body_bytes=_int(env, "FHIRPORTAL_MAX_BODY_BYTES", defaults.max_body_bytes),
            default_page_size=_int(env, "FHIRPORTAL_DEFAULT_PAGE_SIZE", defaults.default_page_size),
            max_page_size=_int(env, "FHIRPORTAL_MAX_PAGE_SIZE", defaults.max_page_size),
            validate_references=_bool(env, "FHIRPORTAL_VALIDATE_REFERENCES", defaults.validate_references),
            benchmark_routes=_bool(env, "FHIRPORTAL_BENCHMARK_ROUTES", defaults.benchmark_routes),
        )

    def with_overrides(self, **changes) -> Settings:
        return replace(self, **changes)

    @property
    def base_path(self) -> str:
        """The URL path the FHIR API is mounted under, e.g. ``/fhir``."""
        from urllib.parse import urlsplit

        return urlsplit(self.base_url).path.rstrip("/")
