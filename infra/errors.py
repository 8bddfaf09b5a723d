"""The one exception root of :mod:`infra`.

Every error an ``infra`` adapter raises on purpose derives from :class:`InfraError`, so
the gateway and ingest can tell a known failure of a shared adapter from a bug. Each
adapter's own errors subclass it and carry their fields.
"""

from __future__ import annotations


class InfraError(Exception):
    """Root of every error raised by :mod:`infra`."""
