"""Settings files and their problems, shared by the gateway's and ingest's configuration.

Both sides are configured alike: a TOML or YAML file, environment variables under a prefix
(nested keys joined by ``__``) and, for ingest, command-line options, validated once at
start-up by a pydantic-settings model. What they share lives here:

* :func:`read_settings_file` reads the file into a mapping. An unreadable file, an unknown
  suffix, bad syntax or a document that is not a table is a problem of the file itself.
* :func:`build_settings` constructs the model and turns a :class:`pydantic.ValidationError`
  into one :class:`SettingsInvalid` listing **every** problem at once, each under its key
  path and, when the bad value did not come from the file, with where it came from (``set
  by the environment variable VITALGATE_GATEWAY_MQTT__KEEPALIVE_SECONDS``).
* :class:`SettingsProblems` lets a check across several settings (a model validator)
  report several problems, each under its own key, instead of stopping at the first.
* :data:`KNOWN_DEFAULT_SECRETS` and :func:`is_known_default_secret`: the passwords that
  ship in examples and tutorials. Both sides refuse them outside demo and test mode, the
  way a web framework's project template refuses its own ``changethis``.

The operator fixes a configuration in one round: every problem of the file, the
environment and the options is in the one error.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import yaml
from pydantic import ValidationError

from infra.errors import InfraError

FILE_KEY: Final = "(file)"
"""The key of a problem with the settings file as a whole."""
SETTINGS_KEY: Final = "(settings)"
"""The key of a problem with the settings as a whole that names no key itself."""
SETTINGS_FILE_SUFFIXES: Final = (".toml", ".yaml", ".yml")

KNOWN_DEFAULT_SECRETS: Final = frozenset(
    {
        "",
        "admin",
        "changeme",
        "changethis",
        "demo",
        "mosquitto",
        "password",
        "public",
        "secret",
        "vitalgate",
    }
)
"""Passwords and tokens that ship in examples, tutorials and broker defaults (compared
without case and surrounding blanks). A service using one is as open as one without a
password, so the gateway and ingest refuse them unless they run as a demo."""

SettingsT = TypeVar("SettingsT")

ValueSource = Callable[[Sequence[str]], str | None]
"""Given a key path, describes where its value was set (``"the environment variable
X"``), or ``None`` if this source did not set it."""


def is_known_default_secret(secret: str) -> bool:
    """Whether ``secret`` is one of :data:`KNOWN_DEFAULT_SECRETS` (or empty)."""
    return secret.strip().casefold() in KNOWN_DEFAULT_SECRETS


@dataclass(frozen=True, slots=True)
class SettingsProblem:
    """One thing wrong with the settings.

    Attributes:
        key: the setting's key path (``mqtt.url``), :data:`FILE_KEY` for the file itself.
        problem: what is wrong and, where it helps, how to fix it.
        source: where the value was set when not in the file (an environment variable,
            an option); ``None`` for the file, or for a setting missing altogether.
    """

    key: str
    problem: str
    source: str | None = None

    def describe(self) -> str:
        """The problem, followed by where its value was set when that is not the file."""
        if self.source is None:
            return self.problem
        return f"{self.problem} (set by {self.source})"


class SettingsInvalid(InfraError):
    """The settings cannot be used; every problem found is listed.

    The message has one line per problem, ``FILE: KEY: PROBLEM`` (``KEY: PROBLEM`` when
    no file was read).

    Attributes:
        path: the settings file, as given, or ``None`` when there was none.
        problems: every problem, in the order the model declares its settings.
    """

    def __init__(self, path: str | None, problems: Sequence[SettingsProblem]) -> None:
        self.path = path
        self.problems = tuple(problems) or (SettingsProblem(SETTINGS_KEY, "invalid"),)
        prefix = f"{path}: " if path else ""
        super().__init__(
            "\n".join(f"{prefix}{item.key}: {item.describe()}" for item in self.problems)
        )


class SettingsProblems(ValueError):
    """Raised by a check across several settings: all of its problems at once.

    Keys are relative to the model whose validator raises it (``"url"`` in the ``mqtt``
    section becomes ``mqtt.url``); a top-level model gives full key paths.

    Attributes:
        problems: ``(key, problem)`` pairs.
    """

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{key}: {text}" for key, text in self.problems))


def read_settings_file(path: Path, *, key: str = FILE_KEY) -> dict[str, Any]:
    """The settings in a ``.toml``, ``.yaml`` or ``.yml`` file, as a mapping.

    Args:
        path: the file.
        key: the key its problems are reported under (ingest names the file by the
            setting that points at it, ``config_file``).

    Raises:
        SettingsInvalid: the file cannot be read, has another suffix, is malformed, or
            does not hold a table of settings at the top.
    """
    shown = str(path)

    def invalid(problem: str) -> SettingsInvalid:
        return SettingsInvalid(shown, [SettingsProblem(key, problem)])

    suffix = path.suffix.lower()
    if suffix not in SETTINGS_FILE_SUFFIXES:
        raise invalid(
            f"unknown format {suffix or 'without a suffix'!r}: use a .toml, .yaml or .yml file"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise invalid(f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise invalid(f"cannot read: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    document: object
    if suffix == ".toml":
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise invalid(f"malformed: not valid TOML ({exc})") from None
    else:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise invalid(f"malformed: not valid YAML ({exc})") from None
        if document is None:
            document = {}
    if not isinstance(document, dict):
        raise invalid("must hold a table of settings at the top (a mapping, not a list or a value)")
    return document


def environment_variable(prefix: str, delimiter: str, key_path: Sequence[str]) -> str:
    """The environment variable that sets the setting at ``key_path``."""
    return prefix + delimiter.join(part.upper() for part in key_path)


def environment_source(prefix: str, delimiter: str, environ: Mapping[str, str]) -> ValueSource:
    """Values set by environment variables: the variable of the key path or of a section
    holding it (a whole section may come as one JSON variable)."""
    names = {name.upper() for name in environ}

    def source(key_path: Sequence[str]) -> str | None:
        for length in range(len(key_path), 0, -1):
            name = environment_variable(prefix, delimiter, key_path[:length])
            if name in names:
                return f"the environment variable {name}"
        return None

    return source


def mapping_source(values: Mapping[str, Any], description: str) -> ValueSource:
    """Values given in ``values`` (keyword arguments, command-line options)."""

    def source(key_path: Sequence[str]) -> str | None:
        node: object = values
        for depth, part in enumerate(key_path):
            if not isinstance(node, Mapping) or part not in node:
                # Below a section given whole, everything came from it.
                return description if depth > 0 else None
            node = node[part]
        return description if key_path else None

    return source


def problems_of(
    error: ValidationError, sources: Sequence[ValueSource] = ()
) -> list[SettingsProblem]:
    """Every problem in ``error``, with its key path and the first source that set it.

    Args:
        error: what the settings model raised.
        sources: where values may have come from besides the file, highest priority first.
    """

    def located(key_path: Sequence[str], problem: str) -> SettingsProblem:
        source = next((found for s in sources if (found := s(key_path)) is not None), None)
        return SettingsProblem(".".join(key_path) or SETTINGS_KEY, problem, source)

    problems: list[SettingsProblem] = []
    for detail in error.errors():
        location = [str(part) for part in detail["loc"]]
        cause = detail.get("ctx", {}).get("error")
        if isinstance(cause, SettingsProblems):
            for key, text in cause.problems:
                problems.append(located([*location, *key.split(".")] if key else location, text))
            continue
        message = str(detail["msg"]).removeprefix("Value error, ")
        if detail["type"] == "missing":
            message = "required, not set"
            problems.append(SettingsProblem(".".join(location), message))
            continue
        if detail["type"] == "extra_forbidden":
            message = "unknown setting, not permitted (misspelt, or in the wrong section?)"
        problems.append(located(location, message))
    return problems


def build_settings(
    model: Callable[..., SettingsT],
    values: Mapping[str, Any],
    *,
    path: str | None,
    sources: Sequence[ValueSource] = (),
) -> SettingsT:
    """``model(**values)``, or a :class:`SettingsInvalid` naming every problem.

    Args:
        model: the settings class (a pydantic model or pydantic-settings class).
        values: what it is constructed with (the file's settings, or options).
        path: the settings file, for the message; ``None`` when there is none.
        sources: where values may have come from besides the file, highest priority
            first (see :func:`environment_source`, :func:`mapping_source`).

    Raises:
        SettingsInvalid: with every problem the model found.
    """
    try:
        return model(**values)
    except ValidationError as exc:
        raise SettingsInvalid(path, problems_of(exc, sources)) from None
