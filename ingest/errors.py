"""The one exception root of :mod:`ingest`.

Every error ingest raises on purpose derives from :class:`IngestError`: configuration
(:class:`IngestConfigError`), the reading stores (:class:`ingest.stores.base.StoreError`
and its subclasses) and the worker (:class:`ingest.worker.IngestConnectError`,
:class:`ingest.worker.IngestWorkerFailed`). A supervisor catching ``IngestError`` catches
ingest's known failure modes and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence


class IngestError(Exception):
    """Root of every error raised by :mod:`ingest`."""


class IngestConfigError(IngestError, ValueError):
    """The ingest configuration is unusable; every problem found is listed.

    The message has one line per problem, ``[FILE: ]KEY: PROBLEM``.

    Attributes:
        key: the first setting at fault (``mqtt_url``, ``plausibility.weight_min_kg`` …).
        problem: what is wrong with it.
        problems: every ``(key, problem)`` found, the first one included.
        path: the configuration file, when one was read.
    """

    def __init__(
        self,
        key: str,
        problem: str,
        *,
        problems: Sequence[tuple[str, str]] = (),
        path: str | None = None,
    ) -> None:
        self.problems = tuple(problems) or ((key, problem),)
        prefix = f"{path}: " if path else ""
        super().__init__("\n".join(f"{prefix}{name}: {text}" for name, text in self.problems))
        self.key = key
        self.problem = problem
        self.path = path
