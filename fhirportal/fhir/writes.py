"""The write interactions on an open transaction: create, update, patch, delete and their
conditional forms. The REST endpoints run one of them per transaction; a transaction Bundle runs
many in one, deferring the checks that must see the whole Bundle (references resolve, deleted
resources are no longer referenced) to its end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jsonpatch

from fhirportal.errors import (
    BadRequest,
    Conflict,
    Gone,
    Issue,
    MethodNotAllowed,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)
from fhirportal.forms import responses as form_responses
from fhirportal.forms import tasks as form_tasks
from fhirportal.messages import rules as message_rules
from fhirportal.scheduling import slots as scheduling
from fhirportal.store.records import StoredResource
from fhirportal.subscriptions import rules as subscription_rules

from .authorization import UNRESTRICTED, Authorization
from .context import FhirContext
from .lookups import Lookups
from .resource_types import APPEND_ONLY_TYPES
from .validation import check_id


@dataclass
class WriteResult:
    record: StoredResource | None  # None: nothing was deleted
    status: int
    message: str


@dataclass
class DeferredChecks:
    """References and deletions whose checks wait for the end of a transaction Bundle."""

    references: list[tuple[str, str, str]] = field(default_factory=list)
    deleted: list[tuple[str, str, str]] = field(default_factory=list)


def refuse_change(resource_type: str, interaction: str) -> None:
    """Append-only types (AuditEvent) are never updated, patched or deleted through the API."""
    if resource_type in APPEND_ONLY_TYPES:
        raise MethodNotAllowed(f"{resource_type} is append-only: {interaction} is not allowed",
                               headers={"Allow": "GET, POST"})


def within_entry(where: str, expression: str | None) -> str:
    """An issue's expression seen from a Bundle entry: ``Observation.status`` → ``Bundle.entry[3].resource.status``."""
    if expression and expression.startswith("Bundle."):
        return expression
    if expression and "." in expression:
        return f"{where}.resource.{expression.split('.', 1)[1]}"
    return where


class Writer:
    """The writes of one transaction, within what ``auth`` allows: a restricted token may only change
    resources it can see and only produce resources it can see (checked in the same transaction,
    which a refusal rolls back)."""

    def __init__(self, ctx: FhirContext, conn, deferred: DeferredChecks | None = None,
                 auth: Authorization = UNRESTRICTED, *, hooks: bool = True, lookups: Lookups | None = None):
        self.ctx = ctx
        self.lookups = lookups or Lookups(ctx, auth)  # conditional searches (built ahead by a transaction)
        self.conn = conn
        self.deferred = deferred
        self.auth = auth
        self.repository = ctx.repository
        self.entry = ""  # the Bundle entry being written, for deferred issues (``Bundle.entry[3]``)
        self.written: list[StoredResource] = []  # versions created, updated or patched (for ``ctx.committed``)
        self.hooks = hooks  # run ``ctx.before_commit`` on what was written, just before the commit
        self._hooked = False

    # ---------------------------------------------------------------- helpers
    def validate(self, body: dict, self_reference: tuple[str, str] | None = None) -> None:
        if self.deferred is None:
            self.ctx.validate(self.conn, body, self_reference=self_reference)
            return

        def collect(refs):
            self.deferred.references.extend((t, i, within_entry(self.entry, where)) for t, i, where in refs)
            return {(t, i) for t, i, _ in refs}

        self.ctx.validator.validate(body, collect, self_reference=self_reference)

    def match(self, resource_type: str, query: str, where: str, interaction: str) -> list[str]:
        """Ids matching conditional criteria (at most 2: enough to tell none/one/many), under a lock;
        only among the resources ``interaction`` may see."""
        criteria, statement = self.lookups.conditional(resource_type, query, where, interaction)
        self.repository.lock_criteria(self.conn, resource_type, criteria)
        return self.repository.ids(self.conn, statement)

    def may_change(self, resource_type: str, fhir_id: str, interaction: str) -> None:
        """403 if the resource exists but ``interaction`` may not see it."""
        visibility = self.auth.visibility(interaction)
        if visibility is None or visibility.sees_every(resource_type):
            return
        if self.repository.visible(self.conn, resource_type, fhir_id, visibility) is False:
            self.auth.refuse_write(f"{resource_type}/{fhir_id}", interaction)

    def may_produce(self, record: StoredResource, interaction: str) -> None:
        """403 (rolling the write back) if what was written is outside what ``interaction`` may see."""
        visibility = self.auth.visibility(interaction)
        if visibility is None or visibility.sees_every(record.resource_type):
            return
        if not self.repository.visible(self.conn, record.resource_type, record.fhir_id, visibility):
            self.auth.refuse_write(record.reference, interaction)

    def accept(self, resource_type: str, body: dict, interaction: str, fhir_id: str | None) -> dict:
        """A Subscription as stored (its criteria and channel checked, ``requested`` made ``active``); a
        secure message (Communication) as its rules allow, its attachments stored as Binaries; a
        QuestionnaireResponse checked against the Questionnaire it names."""
        if resource_type == subscription_rules.SUBSCRIPTION:
            return subscription_rules.accept(self.ctx, body, self.auth)
        if resource_type == message_rules.COMMUNICATION:
            return message_rules.accept(self, body, interaction, fhir_id)
        if resource_type == message_rules.BINARY:
            message_rules.refuse_patient_binary(self.auth)
        if resource_type == "QuestionnaireResponse":
            form_responses.accept(self.ctx, self.conn, body, self.auth)
        return body

    def keep(self, record: StoredResource) -> StoredResource:
        """After a write: a Subscription's rule follows it, a finished QuestionnaireResponse completes the
        form Task it answers (both in the same transaction); the first write of the
        transaction has the ``ctx.before_commit`` hooks run on everything written, just before the commit."""
        if record.resource_type == subscription_rules.SUBSCRIPTION:
            subscription_rules.remember(self.conn, record, self.auth)
        self.written.append(record)
        if record.resource_type == "QuestionnaireResponse":  # a finished form completes its Task (server's rule)
            task = form_tasks.complete(self.ctx, self.conn, record)
            if task is not None:
                self.written.append(task)
        if self.hooks and not self._hooked and self.ctx.before_commit:
            # once per transaction, after the write buffer's flush (registered by the first write)
            self._hooked = True
            self.conn.info.setdefault("before_commit", []).append(
                lambda: self.ctx.committing(self.conn, self.written))
        return record

    def current_body(self, resource_type: str, fhir_id: str):
        """The current version of a resource about to be changed (None: none, or deleted)."""
        try:
            return self.repository.read(self.conn, resource_type, fhir_id)
        except (NotFound, Gone):
            return None

    # ---------------------------------------------------------------- interactions
    def create(self, resource_type: str, body: dict, if_none_exist: str | None = None,
               fhir_id: str | None = None) -> WriteResult:
        body = {k: v for k, v in body.items() if k != "id"}  # the server assigns ids on create
        if if_none_exist:
            matches = self.match(resource_type, if_none_exist, "If-None-Exist", "create")
            if len(matches) > 1:
                raise PreconditionFailed(f"If-None-Exist '{if_none_exist}' matches more than one {resource_type}")
            if matches:
                existing = self.repository.read(self.conn, resource_type, matches[0])
                return WriteResult(existing, 200, f"{existing.reference} already exists (If-None-Exist)")
        if resource_type == message_rules.COMMUNICATION:
            fhir_id = message_rules.assign_id(fhir_id)  # its attachments' Binaries name it
        body = self.accept(resource_type, body, "create", fhir_id)
        self.validate(body)
        if resource_type == "Appointment":  # the patient rules; its slots held in this transaction
            body = scheduling.before_write(self, None, body, fhir_id, "create")
        record = self.repository.create(self.conn, body, fhir_id=fhir_id)
        self.may_produce(record, "create")
        if resource_type == "AuditEvent":  # searched through the access log, in its time order
            self.ctx.audit.index_stored(self.conn, record)
        self.keep(record)
        return WriteResult(record, 201, f"Created {record.reference}")

    def update(self, resource_type: str, fhir_id: str, body: dict, if_match: int | None = None, *,
               probably_new: bool = False) -> WriteResult:
        refuse_change(resource_type, "update")
        check_id(fhir_id)
        if body.get("id") is None:
            raise BadRequest("The resource in an update must carry its id", expression=f"{resource_type}.id")
        if body.get("id") != fhir_id:
            raise BadRequest(f"The id in the body ({body.get('id')}) does not match the URL ({fhir_id})",
                             expression=f"{resource_type}.id")
        body = self.accept(resource_type, body, "update", fhir_id)
        self.validate(body, (resource_type, fhir_id))
        self.may_change(resource_type, fhir_id, "update")
        expected = if_match
        if resource_type == "Appointment":  # the patient rules; its slots held or freed in this transaction
            current = self.current_body(resource_type, fhir_id)
            body = scheduling.before_write(self, current.body if current else None, body, fhir_id, "update")
            expected = current.version_id if current and if_match is None else if_match
            probably_new = probably_new and current is None
        try:
            record, created = self.repository.update(self.conn, resource_type, fhir_id, body,
                                                     expected_version=expected, probably_new=probably_new)
        except PreconditionFailed:
            if if_match is not None:
                raise
            raise Conflict(f"{resource_type}/{fhir_id} was changed at the same moment; try again") from None
        if created:
            self.auth.require(resource_type, "create")  # update as create
        self.may_produce(record, "update")
        self.keep(record)
        return WriteResult(record, 201 if created else 200,
                           f"{'Created' if created else 'Updated'} {record.reference} version {record.version_id}")

    def conditional_update(self, resource_type: str, query: str, body: dict, if_match: int | None = None,
                           new_id: str | None = None) -> WriteResult:
        refuse_change(resource_type, "update")
        matches = self.match(resource_type, query, "the search criteria", "update")
        if len(matches) > 1:
            raise PreconditionFailed(f"The criteria match more than one {resource_type}; be more specific")
        if matches:
            fhir_id = matches[0]
            if body.get("id") not in (None, fhir_id):
                raise BadRequest(f"The body's id ({body['id']}) is not the id of the matching resource "
                                 f"({fhir_id})", expression=f"{resource_type}.id")
        else:
            fhir_id = body.get("id") or new_id
            if fhir_id is None:
                return self.create(resource_type, body)
            check_id(fhir_id, f"{resource_type}.id")
        return self.update(resource_type, fhir_id, {**body, "id": fhir_id}, if_match)

    def patch(self, resource_type: str, fhir_id: str, operations: jsonpatch.JsonPatch,
              if_match: int | None = None) -> WriteResult:
        refuse_change(resource_type, "patch")
        check_id(fhir_id)

        def apply(body: dict) -> dict:
            try:
                result = operations.apply(body)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise Unprocessable(f"The patch cannot be applied: {exc}") from exc
            if not isinstance(result, dict) or result.get("resourceType") != resource_type \
                    or result.get("id") != fhir_id:
                raise Unprocessable("The patch may not change resourceType or id")
            result = self.accept(resource_type, result, "patch", fhir_id)
            self.validate(result, (resource_type, fhir_id))
            if resource_type == "Appointment":
                result = scheduling.before_write(self, body, result, fhir_id, "patch")
            return result

        self.may_change(resource_type, fhir_id, "patch")
        record = self.repository.patch(self.conn, resource_type, fhir_id, apply, expected_version=if_match)
        self.may_produce(record, "patch")
        self.keep(record)
        return WriteResult(record, 200, f"Patched {record.reference} to version {record.version_id}")

    def delete(self, resource_type: str, fhir_id: str, if_match: int | None = None,
               where: str = "") -> WriteResult:
        refuse_change(resource_type, "delete")
        check_id(fhir_id)
        self.may_change(resource_type, fhir_id, "delete")
        if resource_type == "Appointment":  # frees the slots it held
            current = self.current_body(resource_type, fhir_id)
            if current is not None:
                scheduling.before_delete(self, current.body, fhir_id)
        record = self.repository.delete(self.conn, resource_type, fhir_id, expected_version=if_match,
                                        check_referrers=self.deferred is None)
        if record is None:
            return WriteResult(None, 200, f"{resource_type}/{fhir_id}: nothing to delete")
        if resource_type == subscription_rules.SUBSCRIPTION:
            subscription_rules.forget(self.conn, fhir_id)
        if self.deferred is not None:
            self.deferred.deleted.append((resource_type, fhir_id, where))
        return WriteResult(record, 200, f"Deleted {record.reference}")

    def conditional_delete(self, resource_type: str, query: str, where: str = "") -> WriteResult:
        refuse_change(resource_type, "delete")
        matches = self.match(resource_type, query, "Conditional delete", "delete")
        if len(matches) > 1:
            raise PreconditionFailed(f"The criteria match more than one {resource_type}; be more specific")
        if not matches:
            return WriteResult(None, 200, f"No {resource_type} matches: nothing to delete")
        return self.delete(resource_type, matches[0], where=where)

    # ---------------------------------------------------------------- end of a transaction
    def finish(self) -> None:
        """Run the deferred checks; raise (and so roll back) if any fails."""
        if self.deferred is None:
            return
        refs = self.deferred.references
        found = self.repository.existing(self.conn, [(t, i) for t, i, _ in refs])
        issues = [Issue(f"{t}/{i} does not exist on this server", code="not-found", expression=where)
                  for t, i, where in refs if (t, i) not in found]
        if issues:
            raise Unprocessable(issues[0].diagnostics, issues=issues)
        for resource_type, fhir_id, where in self.deferred.deleted:
            referrers = self.repository.referrers(self.conn, resource_type, fhir_id)
            if referrers:
                raise Conflict(f"{resource_type}/{fhir_id} is referenced by {', '.join(referrers)}",
                               expression=where or None)
