"""The options every registry-backed command group shares: ``--registry`` and ``--actor``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from registry.audit import os_actor
from registry.db import DEFAULT_REGISTRY_URL


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    """Where the registry is, and who to record in its audit log."""

    url: str
    actor: str


def registry_options(
    ctx: typer.Context,
    registry: Annotated[
        str,
        typer.Option(
            "--registry",
            envvar="VITALGATE_REGISTRY_URL",
            help="Registry database: sqlite:///PATH or postgresql://USER@HOST/DB.",
        ),
    ] = DEFAULT_REGISTRY_URL,
    actor: Annotated[
        str | None,
        typer.Option(help="Who to record in the audit log (default: the OS user)."),
    ] = None,
) -> None:
    """Typer callback: put :class:`RegistryOptions` into ``ctx.obj``."""
    ctx.obj = RegistryOptions(url=registry, actor=actor if actor is not None else os_actor())
