"""A QuestionnaireResponse checked against its Questionnaire (intake forms).

``issues(questionnaire, response)`` walks the response's items beside the questionnaire's: every
``linkId`` must be one of the questionnaire's at that place; answers must have the item's type (a
``choice`` one of its ``answerOption``s, an ``open-choice`` one of them or free text), at most one
unless the item ``repeats``, within ``maxLength``; an item that ``enableWhen`` disables must not be
answered; and once the response is ``completed`` (or ``amended``) every enabled ``required`` item has an
answer (a required group: some answer inside it). Each problem is an ``Issue`` naming the ``linkId``,
with the FHIRPath of the response's element. A ``choice`` with an ``answerValueSet`` takes a Coding whose
system and code are in the value set's expansion (the server's terminology, as ``ValueSet/$expand``
answers); an ``open-choice`` also free text. A value set this server cannot expand (unknown, or over
content it does not hold) leaves the answer unchecked but for its type.

``accept(ctx, conn, body)`` finds the Questionnaire a response names (``questionnaire``: a canonical
``url|version`` of a stored Questionnaire, or ``Questionnaire/{id}``) and raises a 422 with every issue.
A canonical this server does not hold is accepted unchecked (forms from elsewhere).
"""

from __future__ import annotations

from decimal import Decimal

from fhirportal.errors import Forbidden, Issue, Unprocessable
from fhirportal.fhir.terminology import terminology

ANSWER_TYPES = {  # item type -> the answer value[x] it takes
    "boolean": ("valueBoolean",), "decimal": ("valueDecimal",), "integer": ("valueInteger",),
    "date": ("valueDate",), "dateTime": ("valueDateTime",), "time": ("valueTime",), "string": ("valueString",),
    "text": ("valueString",), "url": ("valueUri",), "choice": ("valueCoding", "valueString", "valueInteger",
                                                               "valueDate", "valueTime", "valueReference"),
    "open-choice": ("valueCoding", "valueString", "valueInteger", "valueDate", "valueTime", "valueReference"),
    "attachment": ("valueAttachment",), "reference": ("valueReference",), "quantity": ("valueQuantity",),
}
NO_ANSWERS = ("group", "display")
FINISHED = ("completed", "amended")


def _value(answer: dict) -> tuple[str, object] | None:
    found = [(key, value) for key, value in answer.items() if key.startswith("value")]
    return found[0] if len(found) == 1 else None


def _same_option(option: dict, key: str, value) -> bool:
    if key not in option:
        return False
    if key == "valueCoding":
        wanted = option[key]
        return isinstance(value, dict) and value.get("code") == wanted.get("code") and (
            not wanted.get("system") or value.get("system") == wanted.get("system"))
    if key == "valueReference":
        return isinstance(value, dict) and value.get("reference") == option[key].get("reference")
    return value == option[key]


class _Answers:
    """Every answer of the response by linkId (what ``enableWhen`` looks at)."""

    def __init__(self, response: dict):
        self.by_link: dict[str, list[dict]] = {}
        self._collect(response.get("item") or [])

    def _collect(self, items) -> None:
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            answers = [a for a in item.get("answer") or [] if isinstance(a, dict)]
            self.by_link.setdefault(str(item.get("linkId")), []).extend(answers)
            self._collect(item.get("item"))
            for answer in answers:
                self._collect(answer.get("item"))


def _compare(operator: str, given, wanted) -> bool:
    if isinstance(given, dict) or isinstance(wanted, dict):  # codings, quantities, references
        if operator not in ("=", "!="):
            return False
        same = isinstance(given, dict) and isinstance(wanted, dict) and all(
            given.get(k) == wanted.get(k) for k in ("system", "code", "reference", "value", "unit") if k in wanted)
        return same if operator == "=" else not same
    try:
        if isinstance(given, int | float) and isinstance(wanted, int | float) and not isinstance(given, bool):
            given, wanted = Decimal(str(given)), Decimal(str(wanted))
        return {"=": given == wanted, "!=": given != wanted, ">": given > wanted, "<": given < wanted,
                ">=": given >= wanted, "<=": given <= wanted}[operator]
    except (TypeError, KeyError):
        return False


def _enabled(item: dict, answers: _Answers) -> bool:
    conditions = [c for c in item.get("enableWhen") or [] if isinstance(c, dict)]
    if not conditions:
        return True
    results = []
    for condition in conditions:
        given = [_value(a) for a in answers.by_link.get(str(condition.get("question")), [])]
        given = [value for value in given if value is not None]
        operator = condition.get("operator")
        wanted = next(((key, value) for key, value in condition.items() if key.startswith("answer")), None)
        if operator == "exists":
            results.append(bool(given) == bool(condition.get("answerBoolean")))
        elif wanted is None:
            results.append(False)
        else:
            results.append(any(_compare(operator, value, wanted[1]) for _, value in given))
    return all(results) if item.get("enableBehavior") != "any" else any(results)


def issues(questionnaire: dict, response: dict) -> list[Issue]:
    found: list[Issue] = []
    answers = _Answers(response)
    finished = response.get("status") in FINISHED
    _items(questionnaire.get("item") or [], response.get("item") or [], "QuestionnaireResponse", answers,
           finished, found, enabled=True)
    return found


def _items(defined: list, given: list, path: str, answers: _Answers, finished: bool, found: list[Issue],
           enabled: bool) -> bool:
    """Check ``given`` (the response's items at one level) against ``defined``; whether anything was answered."""
    by_link = {str(d.get("linkId")): d for d in defined if isinstance(d, dict)}
    answered = False
    seen: dict[str, int] = {}
    for position, item in enumerate(given if isinstance(given, list) else []):
        where = f"{path}.item[{position}]"
        if not isinstance(item, dict):
            continue
        link = str(item.get("linkId"))
        definition = by_link.get(link)
        if definition is None:
            found.append(Issue(f"linkId '{link}' is not an item of the questionnaire here", expression=where))
            continue
        seen[link] = seen.get(link, 0) + 1
        if seen[link] == 2 and not definition.get("repeats"):
            found.append(Issue(f"Item '{link}' does not repeat", expression=where))
        answered |= _item(definition, item, where, answers, finished, found, enabled)
    if finished and enabled:
        for link, definition in by_link.items():
            if definition.get("required") and link not in seen and definition.get("type") != "display" \
                    and _enabled(definition, answers):
                found.append(Issue(f"Item '{link}' ({definition.get('text') or 'no text'}) is required",
                                   code="required", expression=f"{path}.item"))
    return answered


def _item(definition: dict, item: dict, where: str, answers: _Answers, finished: bool, found: list[Issue],
          enabled: bool) -> bool:
    link, kind = str(definition.get("linkId")), definition.get("type")
    enabled = enabled and _enabled(definition, answers)
    given = [a for a in item.get("answer") or [] if isinstance(a, dict)]
    if given and not enabled:
        found.append(Issue(f"Item '{link}' is answered though its enableWhen conditions are not met",
                           expression=f"{where}.answer"))
    if kind in NO_ANSWERS:
        if given:
            found.append(Issue(f"Item '{link}' is a {kind}: it takes no answers", expression=f"{where}.answer"))
        inner = _items(definition.get("item") or [], item.get("item") or [], where, answers, finished, found,
                       enabled)
        if finished and enabled and kind == "group" and definition.get("required") and not inner:
            found.append(Issue(f"Group '{link}' is required: answer something in it", code="required",
                               expression=where))
        return inner
    if len(given) > 1 and not definition.get("repeats"):
        found.append(Issue(f"Item '{link}' takes one answer", expression=f"{where}.answer"))
    if finished and enabled and definition.get("required") and not given:
        found.append(Issue(f"Item '{link}' ({definition.get('text') or 'no text'}) is required", code="required",
                           expression=where))
    for number, answer in enumerate(given):
        _answer(definition, answer, f"{where}.answer[{number}]", found)
        _items(definition.get("item") or [], answer.get("item") or [], f"{where}.answer[{number}]", answers,
               finished, found, enabled)
    return bool(given)


def _answer(definition: dict, answer: dict, where: str, found: list[Issue]) -> None:
    link, kind = str(definition.get("linkId")), definition.get("type")
    value = _value(answer)
    allowed = ANSWER_TYPES.get(kind)
    if value is None:
        found.append(Issue(f"Item '{link}': an answer has exactly one value[x]", expression=where))
        return
    key, content = value
    if allowed is not None and key not in allowed:
        found.append(Issue(f"Item '{link}' is of type {kind}: {key} is not an answer to it",
                           expression=f"{where}.{key}"))
        return
    max_length = definition.get("maxLength")
    if isinstance(max_length, int) and isinstance(content, str) and len(content) > max_length:
        found.append(Issue(f"Item '{link}': at most {max_length} characters", expression=f"{where}.{key}"))
    options = [o for o in definition.get("answerOption") or [] if isinstance(o, dict)]
    free_text = kind == "open-choice" and key == "valueString"
    if options and not free_text and not any(_same_option(option, key, content) for option in options):
        found.append(Issue(f"Item '{link}': the answer is not one of its options", code="code-invalid",
                               expression=f"{where}.{key}"))
    value_set = definition.get("answerValueSet")
    if kind in ("choice", "open-choice") and isinstance(value_set, str) and value_set and not free_text:
        _in_value_set(link, value_set, key, content, f"{where}.{key}", found)


def _in_value_set(link: str, value_set: str, key: str, content, where: str, found: list[Issue]) -> None:
    """The answer must be a Coding of the value set's expansion (unchecked when it cannot be expanded here)."""
    if key == "valueCoding" and isinstance(content, dict):
        system, code = content.get("system"), content.get("code")
        member = terminology().in_expansion(value_set, system, code) if isinstance(code, str) else False
        if member is False:
            shown = f"{system}|{code}" if system else str(code)
            found.append(Issue(f"Item '{link}': the code {shown} is not in the value set {value_set}",
                               code="code-invalid", expression=where))
    elif terminology().in_expansion(value_set, None, None) is not None:  # an expandable set holds codes only
        found.append(Issue(f"Item '{link}': the answer must be a code of the value set {value_set}",
                           code="code-invalid", expression=where))


def accept(ctx, conn, body: dict, auth=None) -> None:
    """A patient's (or caregiver's) response is about their patient and by them (403 otherwise: the
    compartment alone would let ``author`` place another patient's form in it); 422 when the response
    does not fit the stored Questionnaire it names."""
    from fhirportal.messages.rules import own_sender, patient_acting, reference_of

    from .questionnaires import find

    if auth is not None and patient_acting(auth):
        patient = f"Patient/{auth.access.patient}"
        if reference_of(body.get("subject")) != patient:
            raise Forbidden(f"A form filled in with this token must be about {patient} (QuestionnaireResponse.subject)",
                            expression="QuestionnaireResponse.subject")
        for element in ("author", "source"):
            given = reference_of(body.get(element))
            if given and given not in (patient, own_sender(auth.access)):
                raise Forbidden(f"QuestionnaireResponse.{element} must be {own_sender(auth.access)} with this "
                                "token", expression=f"QuestionnaireResponse.{element}")
    canonical = body.get("questionnaire")
    if not isinstance(canonical, str) or not canonical:
        return
    questionnaire = find(ctx, conn, canonical)
    if questionnaire is None:
        return
    problems = issues(questionnaire, body)
    if problems:
        summary = "; ".join(f"{p.diagnostics}" for p in problems[:5])
        raise Unprocessable(f"The response does not fit questionnaire {canonical}: {summary}", issues=problems)
