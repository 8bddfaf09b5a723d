"""Free loopback TCP ports for test services.

Ports are chosen *below* the kernel's ephemeral range on purpose: an outgoing
connection (for example a paho client retrying while its broker is killed) is
given a local port from the ephemeral range, and could take the very port a
killed service wants back on restart, or even connect to itself (TCP
simultaneous open). A port outside that range can only be taken by another
``bind()``, which the random choice makes unlikely and the bind probe detects.
"""

from __future__ import annotations

import contextlib
import random
import socket
from pathlib import Path

LOOPBACK_HOST = "127.0.0.1"

# Well-known ports of the services that may already run on a developer machine or CI
# host (system Mosquitto, InfluxDB HTTP and RPC, PostgreSQL); never hand them out.
RESERVED_PORTS = frozenset({1883, 8883, 8086, 8088, 5432, 8082, 2003, 4242, 25826})

# Lowest port we pick from; below this live many registered service ports.
PORT_RANGE_LOW = 20000
# Used when /proc is unreadable (non-Linux); Linux's default ephemeral floor.
DEFAULT_EPHEMERAL_LOW = 32768
RANDOM_PORT_ATTEMPTS = 200

_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")

# Ports handed out by this process; a port is never handed out twice, so two
# services started in one test session cannot race for the same number.
_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(_EPHEMERAL_RANGE_FILE.read_text().split()[0])
    return DEFAULT_EPHEMERAL_LOW


def _can_bind(port: int) -> bool:
    # No SO_REUSEADDR: a port with connections lingering in TIME_WAIT is refused
    # here, so we never pick one that the service itself might then fail to bind.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK_HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now and not reserved.

    There is an unavoidable window between this probe and the service's own
    ``bind()``; the service classes retry on a fresh port if they lose it.
    """
    high = _ephemeral_low() - 1
    if high > PORT_RANGE_LOW:
        rng = random.SystemRandom()
        for _ in range(RANDOM_PORT_ATTEMPTS):
            port = rng.randint(PORT_RANGE_LOW, high)
            if port in RESERVED_PORTS or port in _handed_out:
                continue
            if _can_bind(port):
                _handed_out.add(port)
                return port
    # Fallback: let the kernel choose (ephemeral range, see module docstring).
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK_HOST, 0))
            port = int(sock.getsockname()[1])
        if port not in RESERVED_PORTS and port not in _handed_out:
            _handed_out.add(port)
            return port


def is_port_open(host: str, port: int, timeout_seconds: float = 0.5) -> bool:
    """Whether a TCP connection to ``host:port`` is accepted."""
    try:
        with socket.create_connection((host, port), timeout=timeout_seconds):
            return True
    except OSError:
        return False


_TCP_LISTEN_STATE = "0A"


def listening_ports_of(pid: int) -> set[int] | None:
    """TCP ports process ``pid`` listens on (IPv4 and IPv6), or None if /proc is unreadable.

    Used to make sure a readiness probe reached *our* server and not another process
    that happens to hold the port (possible when a port is lost to a race).
    """
    try:
        inodes = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = fd.readlink().name
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
        ports: set[int] = set()
        for table in ("tcp", "tcp6"):
            with contextlib.suppress(FileNotFoundError):
                for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                    fields = line.split()
                    if fields[3] == _TCP_LISTEN_STATE and fields[9] in inodes:
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    except (OSError, ValueError, IndexError):
        return None
    return ports
