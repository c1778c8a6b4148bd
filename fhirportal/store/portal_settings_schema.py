"""The practice's PHR invite settings, on the same metadata as the resources.

``practice_setting`` is a small key/value table of practice-level settings (``auto_invite_enabled``,
``lab_sharing_default``; the value is JSON, a missing key means the default of
``fhirportal.portal.settings_api.PRACTICE_DEFAULTS``). ``staff_phr_setting`` holds the per-user flag
"signing a chart note auto-invites the patient"; whether a user may enroll patients is not stored
here but as the account's ``invite`` role, which the enrollment operations check.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Integer, String, Table, Text

from .schema import metadata

practice_setting = Table(
    "practice_setting",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),  # JSON
    Column("updated", DateTime(timezone=True), nullable=False),
    Column("updated_by", Integer, nullable=True),  # the account that last changed it
)

staff_phr_setting = Table(
    "staff_phr_setting",
    metadata,
    Column("account_id", Integer, ForeignKey("account.id", ondelete="CASCADE"), primary_key=True),
    Column("auto_invite_on_signed_note", Boolean, nullable=False, default=False),
    Column("updated", DateTime(timezone=True), nullable=False),
    Column("updated_by", Integer, nullable=True),
)
