"""systemd integration without a dependency: ``sd_notify`` over ``$NOTIFY_SOCKET``.

The gateway's unit is ``Type=notify``: the runtime sends ``READY=1`` once it serves its
devices, ``WATCHDOG=1`` every half ``WatchdogSec`` while its loop and publisher live, and
``STOPPING=1`` when it stops. Outside systemd every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

logger = logging.getLogger(__name__)


class SystemdNotifier:
    """``sd_notify`` over ``$NOTIFY_SOCKET``, with the socket module alone.

    Outside systemd (no ``NOTIFY_SOCKET``) every call does nothing.

    Args:
        environ: the environment to read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and
            ``WATCHDOG_PID`` from.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # A leading "@" names a socket in the abstract namespace.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_seconds: float | None = None
        """``WatchdogSec`` of the unit, when the watchdog is on for this process."""
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_seconds = int(usec) / 1_000_000

    @property
    def enabled(self) -> bool:
        """Whether the process runs under systemd with a notify socket."""
        return bool(self._address)

    def notify(self, message: str) -> bool:
        """Send one notification (``READY=1``, ``WATCHDOG=1`` …); True if it was sent."""
        if not self._address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self._address)
                sock.sendall(message.encode("utf-8"))
        except OSError as exc:
            logger.warning("systemd notification failed", extra={"error": str(exc)})
            return False
        return True
