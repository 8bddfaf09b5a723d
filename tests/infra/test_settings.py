"""The shared settings-file helper: reading files, reporting every problem, known secrets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Self

import pytest
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from infra.errors import InfraError
from infra.settings import (
    FILE_KEY,
    KNOWN_DEFAULT_SECRETS,
    SettingsInvalid,
    SettingsProblem,
    SettingsProblems,
    build_settings,
    environment_source,
    environment_variable,
    is_known_default_secret,
    mapping_source,
    read_settings_file,
)

PREFIX = "VGTEST_"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

    low: int = Field(default=1, ge=0)
    high: int = 10

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        problems = []
        if self.high < self.low:
            problems.append(("high", "must be at least low"))
        if self.high > 1000:
            problems.append(("high", "must be at most 1000"))
        if problems:
            raise SettingsProblems(problems)
        return self


class Example(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, env_nested_delimiter="__", extra="forbid")

    name: str = Field(pattern=r"^[a-z]+$")
    port: int = Field(default=1, ge=1, le=65535)
    section: Section = Section()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(PREFIX):
            monkeypatch.delenv(name)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- reading a file -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("s.toml", 'name = "a"\n[section]\nlow = 2\n', {"name": "a", "section": {"low": 2}}),
        ("s.yaml", "name: a\nsection:\n  low: 2\n", {"name": "a", "section": {"low": 2}}),
        ("s.YML", "name: a\n", {"name": "a"}),
        ("s.yaml", "", {}),
    ],
)
def test_toml_and_yaml_files_are_read(
    tmp_path: Path, name: str, text: str, expected: dict[str, object]
) -> None:
    assert read_settings_file(write(tmp_path, name, text)) == expected


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("s.toml", "name = ", "malformed: not valid TOML"),
        ("s.yaml", "name: [unclosed", "malformed: not valid YAML"),
        ("s.yaml", "- a\n- list\n", "must hold a table of settings at the top"),
        ("s.toml", "\udcff", "cannot read"),
        ("s.ini", "[x]\n", "unknown format '.ini': use a .toml, .yaml or .yml file"),
        ("settings", "", "unknown format 'without a suffix'"),
    ],
)
def test_a_bad_file_is_one_problem_of_the_file(
    tmp_path: Path, name: str, text: str, problem: str
) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(SettingsInvalid) as caught:
        read_settings_file(path)
    assert caught.value.path == str(path)
    assert [item.key for item in caught.value.problems] == [FILE_KEY]
    assert problem in caught.value.problems[0].problem
    assert str(caught.value).startswith(f"{path}: {FILE_KEY}: ")


def test_a_missing_file_names_the_key_it_was_given(tmp_path: Path) -> None:
    with pytest.raises(SettingsInvalid) as caught:
        read_settings_file(tmp_path / "absent.toml", key="config_file")
    assert caught.value.problems == (
        SettingsProblem("config_file", "cannot read: No such file or directory"),
    )
    assert isinstance(caught.value, InfraError)


# -- every problem at once ------------------------------------------------------------------


def test_every_problem_is_reported_at_once_with_the_file_and_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "s.toml", 'name = "UPPER"\ncolour = "blue"\n[section]\nlow = -1\n')
    monkeypatch.setenv(f"{PREFIX}PORT", "0")
    document = read_settings_file(path)
    with pytest.raises(SettingsInvalid) as caught:
        build_settings(
            Example,
            document,
            path=str(path),
            sources=[environment_source(PREFIX, "__", {f"{PREFIX}PORT": "0"})],
        )
    problems = caught.value.problems
    assert sorted(item.key for item in problems) == [
        "colour",
        "name",
        "port",
        "section.low",
    ]
    by_key = {item.key: item for item in problems}
    assert by_key["port"].source == f"the environment variable {PREFIX}PORT"
    assert by_key["name"].source is None  # from the file
    assert "unknown setting" in by_key["colour"].problem
    lines = str(caught.value).splitlines()
    assert len(lines) == 4
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert f"{path}: port: " in str(caught.value)
    assert f"(set by the environment variable {PREFIX}PORT)" in str(caught.value)


def test_a_check_across_settings_reports_each_of_its_problems_under_its_key() -> None:
    with pytest.raises(SettingsInvalid) as caught:
        build_settings(Example, {"name": "a", "section": {"low": 5, "high": 2000}}, path=None)
    assert [(item.key, item.problem) for item in caught.value.problems] == [
        ("section.high", "must be at most 1000"),
    ]
    with pytest.raises(SettingsInvalid) as caught:
        build_settings(Example, {"section": {"low": 5, "high": 2}}, path=None)
    assert [(item.key, item.problem) for item in caught.value.problems] == [
        ("name", "required, not set"),
        ("section.high", "must be at least low"),
    ]
    assert str(caught.value) == "name: required, not set\nsection.high: must be at least low"


def test_valid_settings_are_built() -> None:
    settings = build_settings(Example, {"name": "a", "port": 8}, path=None)
    assert (settings.name, settings.port, settings.section.low) == ("a", 8, 1)


# -- sources --------------------------------------------------------------------------------


def test_environment_source_finds_the_variable_of_the_key_or_of_its_section() -> None:
    source = environment_source("VG_", "__", {"VG_SECTION": '{"low": 1}', "vg_port": "1"})
    assert source(["section", "low"]) == "the environment variable VG_SECTION"
    assert source(["port"]) == "the environment variable VG_PORT"
    assert source(["name"]) is None
    assert environment_variable("VG_", "__", ["mqtt", "password"]) == "VG_MQTT__PASSWORD"


def test_mapping_source_finds_given_keys_and_sections() -> None:
    source = mapping_source({"port": 1, "section": {"low": 2}}, "an option")
    assert source(["port"]) == "an option"
    assert source(["section", "high"]) == "an option"  # the section was given whole
    assert source(["name"]) is None
    assert source([]) is None


# -- known default secrets ------------------------------------------------------------------


@pytest.mark.parametrize("secret", sorted(KNOWN_DEFAULT_SECRETS))
def test_every_known_default_secret_is_recognised(secret: str) -> None:
    assert is_known_default_secret(secret)
    assert is_known_default_secret(f"  {secret.upper()} ")


@pytest.mark.parametrize("secret", ["changethis-not", "s3cr3t-Horse-battery", "passw0rd!x"])
def test_real_secrets_are_not_refused(secret: str) -> None:
    assert not is_known_default_secret(secret)


def test_the_template_secret_changethis_is_known() -> None:
    assert "changethis" in KNOWN_DEFAULT_SECRETS
    assert "" in KNOWN_DEFAULT_SECRETS


# -- layering -------------------------------------------------------------------------------


def test_infra_imports_neither_gateway_nor_ingest_nor_registry() -> None:
    code = (
        "import sys, infra.settings, infra.errors\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'gateway', 'ingest', 'registry', 'vitalgate'})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
