"""``vitalgate audit``: check the registry's hash-chained audit log.

Examples::

    vitalgate audit verify
    vitalgate audit verify --registry postgresql://vitalgate@db.internal/registry
    vitalgate audit verify --expect-head 18342:9f2c…   # an anchor recorded with a backup

``verify`` reads every row in chain order and exits 0 with the chain's head (``SEQ:HASH``,
worth recording beside each backup) when the chain is intact, or exits 1 listing each
changed, missing or inserted row by id and seq. An unreachable or uninitialised database
exits 2.
"""

from __future__ import annotations

from typing import Annotated, Final

import typer

from registry.audit import chain_head, parse_anchor, verify_audit_log
from registry.db import DEFAULT_REGISTRY_URL, check_schema, create_engine_for, session_scope
from registry.errors import RegistryError

EXIT_TAMPERED: Final = 1
"""The chain does not verify: rows were changed, deleted or inserted."""
EXIT_UNUSABLE: Final = 2
"""The registry could not be read (bad URL, unreachable, not initialised)."""

app = typer.Typer(
    help="The audit log: verify its hash chain.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _group() -> None:
    """The audit log: verify its hash chain."""


@app.command("verify")
def verify(
    registry: Annotated[
        str,
        typer.Option(
            envvar="VITALGATE_REGISTRY_URL",
            help="Registry database URL (sqlite:/// or postgresql://).",
        ),
    ] = DEFAULT_REGISTRY_URL,
    expect_head: Annotated[
        str | None,
        typer.Option(help="SEQ:HASH printed by an earlier verify; it must still be in the chain."),
    ] = None,
) -> None:
    """Verify every row of the audit chain; name each row that was changed, removed or added."""
    try:
        anchor = parse_anchor(expect_head) if expect_head is not None else None
        engine = create_engine_for(registry)
        try:
            check_schema(engine)
            with session_scope(engine, write=False) as session:
                problems = verify_audit_log(session, anchor=anchor)
                head = chain_head(session)
        finally:
            engine.dispose()
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_UNUSABLE) from exc
    if problems:
        for problem in problems:
            typer.echo(f"TAMPERED {problem}")
        typer.echo(f"audit chain does not verify: {len(problems)} problem(s)", err=True)
        raise typer.Exit(EXIT_TAMPERED)
    assert head is not None  # a missing head is one of the problems reported above
    typer.echo(f"audit chain intact: {head.seq} rows, head {head.seq}:{head.row_hash}")
