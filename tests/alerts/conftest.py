"""Shared fixtures of the rule tests."""

from __future__ import annotations

import pytest

from alerts.rules.loader import default_rules
from alerts.rules.model import RuleSet


@pytest.fixture(scope="session")
def rules() -> RuleSet:
    return default_rules()
