"""Errors of the wire contract: one root, typed subclasses that carry the offending field."""

from __future__ import annotations

import re


class ContractError(Exception):
    """Root of every error raised by :mod:`readings`."""


class InvalidReading(ContractError, ValueError):
    """A reading (or a message of the contract) breaks a rule of the contract.

    Subclasses :class:`ValueError` so that msgspec, which converts ``ValueError`` raised
    while decoding into a ``ValidationError`` with the JSON path, keeps the path for us.

    Attributes:
        field: the field that breaks the rule, relative to the object that was checked.
        problem: what is wrong with it, in words an operator can act on.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class PayloadError(ContractError):
    """A payload could not be decoded.

    Attributes:
        field: JSON path of the offending field, e.g. ``$.readings[3].values.glucose``;
            ``$`` when the payload as a whole is bad (not JSON, too large).
        problem: what is wrong with it.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class UnitError(ContractError, ValueError):
    """A unit is unknown, or cannot be converted into the unit asked for."""


class TopicError(ContractError, ValueError):
    """A topic is not one of the contract's topics, or a topic level is not allowed."""


_MSGSPEC_AT = re.compile(r"^(?P<message>.*?)(?: - at `(?P<path>[^`]*)`)?$", re.DOTALL)
_MSGSPEC_FIELD = re.compile(
    r"^Object (?P<what>missing required|contains unknown) field `(?P<name>[^`]*)`$"
)
_OWN_PROBLEM = re.compile(r"^(?P<field>[a-z_][a-z0-9_.\[\]]*): (?P<problem>.+)$", re.DOTALL)


def payload_error_from_msgspec(exc: Exception, prefix: str = "$") -> PayloadError:
    """Turn a msgspec decoding error into a :class:`PayloadError` that names the field.

    msgspec reports ``<message> - at `$.path``; our own validators raise
    ``InvalidReading("field", "problem")`` whose text is ``field: problem``. Both become
    one JSON path and one sentence. ``prefix`` replaces the leading ``$`` when a part of a
    payload was decoded on its own (e.g. ``$.readings[3]``).
    """
    text = str(exc)
    if type(exc).__name__ == "DecodeError":
        return PayloadError(prefix, f"not valid JSON ({text.removeprefix('JSON is malformed: ')})")
    match = _MSGSPEC_AT.match(text)
    message = match.group("message") if match else text
    path = (match.group("path") if match else None) or "$"
    path = prefix + path[1:]
    field_match = _MSGSPEC_FIELD.match(message)
    if field_match is not None:
        problem = (
            "required field is missing"
            if field_match.group("what") == "missing required"
            else "unknown field"
        )
        return PayloadError(f"{path}.{field_match.group('name')}", problem)
    own = _OWN_PROBLEM.match(message)
    if own is not None:
        return PayloadError(f"{path}.{own.group('field')}", own.group("problem"))
    problem = message.replace("`", "")
    if problem.startswith("Invalid value") and path.endswith(".kind"):
        problem = problem.replace("Invalid value", "unknown kind")
    return PayloadError(path, problem[:1].lower() + problem[1:])
