"""The shipped ``deploy/mosquitto/mosquitto.conf``, read so tests run the broker as shipped."""

from __future__ import annotations

from pathlib import Path
from typing import Final

DEPLOY_DIR: Final = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"


def shipped_options(excluded: frozenset[str]) -> list[str]:
    """Every option line of the shipped config whose name is not in ``excluded``."""
    lines = []
    for line in (DEPLOY_DIR / "mosquitto.conf").read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and stripped.split()[0] not in excluded:
            lines.append(stripped)
    return lines
