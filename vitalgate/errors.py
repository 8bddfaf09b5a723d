"""The one exception root of :mod:`vitalgate` (the command line and the demo).

Every error the ``vitalgate`` package raises on purpose derives from :class:`VitalgateError`:
the demo (:class:`vitalgate.demo.DemoError`), its embedded broker
(:class:`vitalgate.embedded_broker.EmbeddedBrokerError`) and input a command cannot use
(:class:`vitalgate.commands.decode.BadInput`). Errors of the packages it drives keep their
own roots (:class:`gateway.errors.GatewayError`, :class:`ingest.errors.IngestError`,
:class:`registry.errors.RegistryError` …); a command turns them into a message and an exit
code.
"""

from __future__ import annotations


class VitalgateError(Exception):
    """Root of every error raised by :mod:`vitalgate`."""
