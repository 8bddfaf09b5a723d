"""Real services for integration and fault tests.

Every server runs as its own process, in its own process group, on free loopback
ports, with all of its state (config, data, logs) in its own directory. Nothing
here talks to the system Mosquitto (1883), InfluxDB (8086/8088) or any other
shared instance, so tests can kill, pause and restart services freely and can
run in parallel.

The harness uses only the standard library (the readiness probes speak raw
MQTT and plain HTTP), so it works before any project dependency is installed
and cannot hide a bug in the client libraries under test.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from tests.harness.ports import LOOPBACK_HOST, free_port, is_port_open, listening_ports_of

MOSQUITTO_BINARY = Path("/usr/sbin/mosquitto")
INFLUXD_BINARY = Path("/usr/bin/influxd")
SETPRIV_BINARY = Path("/usr/bin/setpriv")

# Shown when a required binary is missing: real services are a hard requirement.
INSTALL_HINT = (
    "real services are required for integration tests; run `scripts/test`, which installs "
    "them (or `apt-get install -y mosquitto mosquitto-clients influxdb`)"
)

# influxd needs 1-3 s on a cold 2-core CI machine and longer after an unclean stop with
# a large WAL (14 s seen on the reference box); 30 s still fails fast on a real hang.
SERVER_START_TIMEOUT_SECONDS = 30.0
# Graceful stop: Mosquitto writes its persistence file, influxd closes its shards.
SERVER_STOP_TIMEOUT_SECONDS = 15.0
# Readiness poll period; a local service answers in well under this.
READY_POLL_INTERVAL_SECONDS = 0.05
# Bound for one probe attempt (TCP connect plus protocol round trip).
PROBE_TIMEOUT_SECONDS = 1.0
# Bound for one harness HTTP request to InfluxDB.
HTTP_TIMEOUT_SECONDS = 15.0
# How many log lines an error message carries.
LOG_TAIL_LINES = 40
# If a first start loses its free port to someone else, pick another this many times.
PORT_RETRY_ATTEMPTS = 5
# A restart on a fixed port retries "address in use" this long: a socket of the previous
# process lingers for milliseconds at most; longer means someone else owns the port.
ADDRESS_IN_USE_RETRY_SECONDS = 5.0

_ADDRESS_IN_USE = re.compile(r"address already in use", re.IGNORECASE)


class ServiceError(RuntimeError):
    """A test service misbehaved (did not start, did not stop, answered an error)."""


class ServiceStartError(ServiceError):
    """A test service did not become ready; the message carries its log tail."""


class MissingBinaryError(ServiceError):
    """A service binary is not installed."""


def unique_name(prefix: str) -> str:
    """``prefix_<pid>_<random hex>``: unique across tests, sessions and xdist workers."""
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"


def require_binary(path: Path) -> None:
    """Raise :class:`MissingBinaryError` (with the install hint) if ``path`` is missing."""
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise MissingBinaryError(f"{path} is not installed: {INSTALL_HINT}")


def _tail(path: Path, lines: int) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    text = data[-256 * lines :].decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def _pdeathsig_supported() -> bool:
    if not SETPRIV_BINARY.is_file():
        return False
    try:
        result = subprocess.run(
            [str(SETPRIV_BINARY), "--help"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return "--pdeathsig" in result.stdout


_PDEATHSIG = _pdeathsig_supported()

# Every service process that may still be alive; killed at interpreter exit so that an
# aborted run (Ctrl-C, a failing fixture, pytest-timeout) never leaves servers behind.
_live_services: set[ServiceProcess] = set()
_live_lock = threading.Lock()


def kill_all_services() -> None:
    """SIGKILL every service process this interpreter started and has not stopped."""
    with _live_lock:
        services = list(_live_services)
    for service in services:
        with contextlib.suppress(Exception):
            service.kill()


atexit.register(kill_all_services)


class ServiceProcess:
    """Base class: one server process with its own directory, ports and log.

    Lifecycle: :meth:`start` (waits until the service answers its protocol),
    :meth:`stop` (SIGTERM, then SIGKILL after a deadline), :meth:`kill`
    (SIGKILL), :meth:`pause`/:meth:`resume` (SIGSTOP/SIGCONT) and
    :meth:`restart`. A restart reuses the same port and the same data
    directory, so clients can reconnect and data must survive.
    """

    name: ClassVar[str] = "service"

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        start_timeout_seconds: float = SERVER_START_TIMEOUT_SECONDS,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = LOOPBACK_HOST
        # A port chosen by the caller, or one the service has already served on, must be
        # kept: clients remember it. Only a fresh auto-chosen port may be replaced.
        self._port_fixed = port is not None
        self.port = port if port is not None else free_port()
        self.start_timeout_seconds = start_timeout_seconds
        self.console_log_path = self.workdir / f"{self.name}.console.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._start_count = 0
        self._log_offsets: dict[Path, int] = {}

    # -- subclass hooks -------------------------------------------------------------

    def _write_config(self) -> None:
        raise NotImplementedError

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _probe(self) -> bool:
        """Return True once the service answers its own protocol."""
        raise NotImplementedError

    def _log_paths(self) -> list[Path]:
        return [self.console_log_path]

    def _choose_new_ports(self) -> None:
        self.port = free_port()

    def _environment(self) -> dict[str, str]:
        return dict(os.environ)

    def _owns_port(self, pid: int) -> bool:
        # The probe alone could be answered by another process that holds our port.
        ports = listening_ports_of(pid)
        return ports is None or self.port in ports

    # -- state ----------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """PID of the running process (also its process-group id), or None."""
        return self._process.pid if self.is_running() and self._process else None

    @property
    def paused(self) -> bool:
        """Whether the process is stopped with SIGSTOP."""
        return self._paused

    def is_running(self) -> bool:
        """Whether the process exists (it may be paused)."""
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of each of the service's log files."""
        parts = []
        for path in self._log_paths():
            tail = _tail(path, lines)
            parts.append(f"--- {path} (last {lines} lines) ---\n{tail or '(empty)'}")
        return "\n".join(parts)

    def describe(self) -> str:
        state = "paused" if self._paused else ("running" if self.is_running() else "stopped")
        return f"{self.name} on {self.host}:{self.port} ({state}, dir {self.workdir})"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start the process and wait until it is ready.

        Raises :class:`ServiceStartError` with the log tail if it exits or does not
        answer within ``start_timeout_seconds``.
        """
        if self.is_running():
            raise ServiceError(f"{self.describe()} is already running")
        started = time.monotonic()
        deadline = started + self.start_timeout_seconds
        bind_deadline = min(deadline, started + ADDRESS_IN_USE_RETRY_SECONDS)
        port_retries = PORT_RETRY_ATTEMPTS
        bind_failures = 0
        while True:
            self._spawn()
            try:
                note = (
                    f" (address in use on {bind_failures} earlier tries)" if bind_failures else ""
                )
                self._wait_ready_until(deadline, note, kill_on_timeout=True)
            except _AddressInUse:
                bind_failures += 1
                if not self._port_fixed and port_retries > 0:
                    # Someone took our free port between probe and bind: take another.
                    port_retries -= 1
                    self._choose_new_ports()
                    continue
                if time.monotonic() < bind_deadline:
                    # Restart on a fixed port: the old socket may linger briefly.
                    time.sleep(READY_POLL_INTERVAL_SECONDS * 4)
                    continue
                raise ServiceStartError(
                    f"{self.name} could not bind {self.host}:{self.port} (address already "
                    f"in use) for {time.monotonic() - started:.1f} s\n{self.log_tail()}"
                ) from None
            break
        self._port_fixed = True

    def wait_ready(self, timeout_seconds: float | None = None) -> None:
        """Block until the running service answers, or raise :class:`ServiceStartError`.

        Unlike :meth:`start`, a timeout leaves the process alone (it may be paused).
        """
        timeout = self.start_timeout_seconds if timeout_seconds is None else timeout_seconds
        try:
            self._wait_ready_until(time.monotonic() + timeout, kill_on_timeout=False)
        except _AddressInUse:
            raise ServiceStartError(
                f"{self.name} exited: address {self.host}:{self.port} already in use\n"
                f"{self.log_tail()}"
            ) from None

    def stop(self, timeout_seconds: float = SERVER_STOP_TIMEOUT_SECONDS) -> int | None:
        """SIGTERM the process group and wait; SIGKILL if it outlives the timeout.

        Returns the exit code (None if it was not running). Safe to call repeatedly.
        """
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            self._signal_group(signal.SIGTERM)
            # A SIGSTOPped process only acts on SIGTERM once continued.
            self._signal_group(signal.SIGCONT)
            try:
                process.wait(timeout=timeout_seconds)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                process.wait()
        return self._forget()

    def kill(self) -> int | None:
        """SIGKILL the process group (no clean shutdown) and reap it."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            self._signal_group(signal.SIGKILL)
            process.wait()
        return self._forget()

    def pause(self) -> None:
        """SIGSTOP the process: its sockets stay open but nothing is answered."""
        self._require_running()
        self._signal_group(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT a paused process."""
        self._require_running()
        self._signal_group(signal.SIGCONT)
        self._paused = False

    def restart(self, *, graceful: bool = True) -> None:
        """Stop (SIGTERM, or SIGKILL if ``graceful`` is False) and start on the same port."""
        if graceful:
            self.stop()
        else:
            self.kill()
        self.start()

    # -- internals ------------------------------------------------------------------

    def _require_running(self) -> None:
        if not self.is_running():
            raise ServiceError(f"{self.describe()} is not running")

    def _signal_group(self, sig: signal.Signals) -> None:
        process = self._process
        # Signal only while the leader is unreaped: its pid (= our process-group id)
        # cannot have been reused by an unrelated process until then.
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)

    def _forget(self) -> int | None:
        process = self._process
        code = process.returncode if process else None
        self._process = None
        self._paused = False
        with _live_lock:
            _live_services.discard(self)
        return code

    def _new_log_text(self) -> str:
        """Log output written since the latest spawn (logs accumulate across restarts)."""
        chunks = []
        for path in self._log_paths():
            with contextlib.suppress(OSError), path.open("rb") as log:
                log.seek(self._log_offsets.get(path, 0))
                chunks.append(log.read().decode("utf-8", errors="replace"))
        return "\n".join(chunks)

    def _spawn(self) -> None:
        self._write_config()
        self._start_count += 1
        self._log_offsets = {
            path: path.stat().st_size if path.exists() else 0 for path in self._log_paths()
        }
        command = self._command()
        # setpriv --pdeathsig makes the kernel SIGKILL the server if the thread that
        # started it dies, covering runs that end without atexit (pytest-timeout's
        # thread method calls os._exit). Only from the main thread: a worker thread
        # that exits would take its servers down with it.
        if _PDEATHSIG and threading.current_thread() is threading.main_thread():
            command = [str(SETPRIV_BINARY), "--pdeathsig", "KILL", "--", *command]
        with self.console_log_path.open("ab") as console:
            console.write(
                f"=== harness: start #{self._start_count} of {self.name} on port "
                f"{self.port}: {' '.join(command)}\n".encode()
            )
            console.flush()
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self._environment(),
                # Own process group: signals reach the whole service, never pytest.
                start_new_session=True,
            )
        self._paused = False
        with _live_lock:
            _live_services.add(self)

    def _wait_ready_until(self, deadline: float, note: str = "", *, kill_on_timeout: bool) -> None:
        entered = time.monotonic()
        process = self._process
        if process is None:
            raise ServiceError(f"{self.describe()} was never started")
        while True:
            code = process.poll()
            if code is not None:
                self._forget()
                if _ADDRESS_IN_USE.search(self._new_log_text()):
                    raise _AddressInUse
                tail = self.log_tail()
                raise ServiceStartError(
                    f"{self.name} exited with code {code} while starting on "
                    f"{self.host}:{self.port}\n{tail}"
                )
            if self._owns_port(process.pid) and self._probe():
                return
            if time.monotonic() >= deadline:
                tail = self.log_tail()
                action = ""
                if kill_on_timeout:
                    # A half-started server must not linger into the next attempt or test.
                    self.kill()
                    action = "; killed it"
                raise ServiceStartError(
                    f"{self.name} on {self.host}:{self.port} was not ready after "
                    f"{time.monotonic() - entered:.1f} s{note}{action}\n{tail}"
                )
            time.sleep(READY_POLL_INTERVAL_SECONDS)


class _AddressInUse(Exception):
    """Internal: the service exited because its port was taken."""


# ---------------------------------------------------------------------------------------
# Mosquitto
# ---------------------------------------------------------------------------------------

# Mosquitto's stock limit of 1000 queued messages per client silently drops the rest
# (docs/mqtt.md, "Broker defaults that lose data"); tests that want the drop set it themselves.
MOSQUITTO_MAX_QUEUED_MESSAGES = 1_000_000
MOSQUITTO_MAX_QUEUED_BYTES = 0  # 0 = no byte limit

# MQTT 3.1.1 CONNECT: clean session, keepalive 10 s, empty client id (broker assigns one).
_MQTT_PROBE_CONNECT = bytes(
    [0x10, 12, 0x00, 0x04, *b"MQTT", 0x04, 0x02, 0x00, 0x0A, 0x00, 0x00],
)
_MQTT_DISCONNECT = bytes([0xE0, 0x00])
_MQTT_CONNACK_TYPE = 0x20


def mqtt_connack_received(host: str, port: int, timeout_seconds: float) -> bool:
    """Whether a broker answers an MQTT CONNECT with a CONNACK within the timeout.

    Any CONNACK counts, including "not authorised": that still proves the broker is up
    and serving, whatever auth the test configured.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout_seconds) as sock:
            sock.settimeout(timeout_seconds)
            sock.sendall(_MQTT_PROBE_CONNECT)
            reply = b""
            while len(reply) < 2:
                chunk = sock.recv(4 - len(reply))
                if not chunk:
                    return False
                reply += chunk
            ok = reply[0] & 0xF0 == _MQTT_CONNACK_TYPE
            if ok:
                with contextlib.suppress(OSError):
                    sock.sendall(_MQTT_DISCONNECT)
            return ok
    except OSError:
        return False


@dataclass(frozen=True)
class MosquittoTls:
    """A TLS listener of a test broker (see :mod:`tests.harness.pki` for the files).

    Attributes:
        ca_file: the CA that signs client certificates (and the broker's).
        cert_file: the broker's certificate.
        key_file: its key.
        crl_file: the CA's revocation list (Mosquitto's ``crlfile``), if any.
        require_certificate: refuse clients without a valid certificate.
        use_identity_as_username: the client certificate's CN is the MQTT username the
            ACL sees (as in the shipped deploy/mosquitto/mosquitto.conf).
    """

    ca_file: Path
    cert_file: Path
    key_file: Path
    crl_file: Path | None = None
    require_certificate: bool = True
    use_identity_as_username: bool = True

    def config_lines(self, host: str, port: int) -> list[str]:
        """The listener block for ``mosquitto.conf``."""
        lines = [
            f"listener {port} {host}",
            f"cafile {self.ca_file}",
            f"certfile {self.cert_file}",
            f"keyfile {self.key_file}",
            "tls_version tlsv1.2",
            f"require_certificate {'true' if self.require_certificate else 'false'}",
            f"use_identity_as_username {'true' if self.use_identity_as_username else 'false'}",
        ]
        if self.crl_file is not None:
            lines.append(f"crlfile {self.crl_file}")
        return lines


class MosquittoServer(ServiceProcess):
    """A real Mosquitto broker on ``127.0.0.1:<free port>`` with state in ``workdir``.

    The generated ``mosquitto.conf`` enables persistence into ``workdir/data/``,
    raises ``max_queued_messages`` (default 1000 drops silently) and logs to
    ``workdir/mosquitto.log``. ``extra_config`` lines are appended after the
    listener; a line whose option name matches a default (for example
    ``allow_anonymous false`` or ``max_queued_messages 1000``) replaces that
    default instead of duplicating it. ``tls`` adds a TLS listener on
    ``tls_port`` (:attr:`tls_url`) after them; the readiness probe speaks plain MQTT
    to the main listener.

    Note: persistence is written on clean shutdown and every ``autosave_interval``
    (default 1800 s), so after :meth:`kill` the broker restarts from the last
    snapshot, usually empty. That is Mosquitto's real behaviour, kept on purpose.
    """

    name = "mosquitto"

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        extra_config: Iterable[str] = (),
        allow_anonymous: bool = True,
        start_timeout_seconds: float = SERVER_START_TIMEOUT_SECONDS,
        tls: MosquittoTls | None = None,
    ) -> None:
        super().__init__(workdir, port=port, start_timeout_seconds=start_timeout_seconds)
        self.tls = tls
        self.tls_port = free_port() if tls is not None else None
        self.extra_config = [line.strip() for line in extra_config if line.strip()]
        self.allow_anonymous = allow_anonymous
        self.config_path = self.workdir / "mosquitto.conf"
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "mosquitto.log"
        self.data_dir.mkdir(exist_ok=True)

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:PORT``."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def tls_url(self) -> str:
        """``mqtts://127.0.0.1:TLS_PORT`` (only with ``tls``)."""
        if self.tls_port is None:
            raise ServiceError("this broker has no TLS listener")
        return f"mqtts://{self.host}:{self.tls_port}"

    @property
    def persistence_path(self) -> Path:
        """The broker's persistence snapshot (exists after a clean stop or autosave)."""
        return self.data_dir / "mosquitto.db"

    def _default_options(self) -> list[tuple[str, str]]:
        options: list[tuple[str, str]] = []
        if os.geteuid() == 0:
            # As root, Mosquitto 2.x drops to user "mosquitto", which cannot write our
            # root-owned temp dir, so persistence would fail. Stay root instead.
            options.append(("user", "root"))
        options += [
            ("allow_anonymous", "true" if self.allow_anonymous else "false"),
            ("persistence", "true"),
            # mosquitto.conf(5) asks for the trailing slash (2.0 also adds a separator).
            ("persistence_location", f"{self.data_dir}/"),
            ("persistence_file", "mosquitto.db"),
            ("max_queued_messages", str(MOSQUITTO_MAX_QUEUED_MESSAGES)),
            ("max_queued_bytes", str(MOSQUITTO_MAX_QUEUED_BYTES)),
            ("log_dest", f"file {self.log_path}"),
            ("log_type", "error"),
            ("log_type", "warning"),
            ("log_type", "notice"),
            ("log_type", "information"),
            ("log_timestamp", "true"),
            ("log_timestamp_format", "%Y-%m-%dT%H:%M:%S"),
            ("connection_messages", "true"),
        ]
        return options

    def config_text(self) -> str:
        """The configuration this broker is started with."""
        overridden = {line.split()[0] for line in self.extra_config if not line.startswith("#")}
        overridden.discard("listener")
        lines = ["# Generated by tests/harness/services.py"]
        lines += [
            f"{key} {value}" for key, value in self._default_options() if key not in overridden
        ]
        lines.append(f"listener {self.port} {self.host}")
        lines += self.extra_config
        if self.tls is not None and self.tls_port is not None:
            lines += self.tls.config_lines(self.host, self.tls_port)
        return "\n".join(lines) + "\n"

    def _choose_new_ports(self) -> None:
        super()._choose_new_ports()
        if self.tls is not None:
            self.tls_port = free_port()

    def _write_config(self) -> None:
        self.config_path.write_text(self.config_text())

    def _command(self) -> list[str]:
        require_binary(MOSQUITTO_BINARY)
        return [str(MOSQUITTO_BINARY), "-c", str(self.config_path)]

    def _probe(self) -> bool:
        return mqtt_connack_received(self.host, self.port, PROBE_TIMEOUT_SECONDS)

    def _log_paths(self) -> list[Path]:
        return [self.log_path, self.console_log_path]


# ---------------------------------------------------------------------------------------
# InfluxDB 1.x
# ---------------------------------------------------------------------------------------

ConfigValue = str | int | bool
ConfigSections = Mapping[str, Mapping[str, ConfigValue]]


def _toml_value(value: ConfigValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    # JSON string escapes are valid TOML basic-string escapes.
    return json.dumps(value)


def _quote_identifier(name: str) -> str:
    escaped = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


@dataclass(frozen=True)
class HTTPResult:
    """Status, body and headers of one HTTP exchange."""

    status: int
    body: bytes
    headers: Mapping[str, str]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class InfluxDBError(ServiceError):
    """InfluxDB answered with an unexpected status or an error in its JSON."""

    def __init__(self, message: str, result: HTTPResult | None = None) -> None:
        super().__init__(message)
        self.result = result


# Never route loopback test traffic through an HTTP proxy from the environment.
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_seconds: float = HTTP_TIMEOUT_SECONDS,
) -> HTTPResult:
    """One HTTP request with the standard library; any status is returned, not raised."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with _NO_PROXY_OPENER.open(request, timeout=timeout_seconds) as response:
            return HTTPResult(response.status, response.read(), dict(response.headers))
    except urllib.error.HTTPError as error:
        # Close it: an unclosed HTTPError leaks its socket (a ResourceWarning, which this
        # project's pytest configuration turns into an error).
        with error:
            return HTTPResult(error.code, error.read(), dict(error.headers))


class InfluxDBServer(ServiceProcess):
    """A real InfluxDB 1.x (``influxd``) with meta, data and WAL in ``workdir``.

    HTTP listens on ``127.0.0.1:<port>``; the RPC (backup) service, which defaults
    to 8088 and would collide with a system InfluxDB, gets a second free port.
    ``config_overrides`` maps a section name (``""`` for top-level keys) to keys
    that replace or extend the generated configuration, e.g.
    ``{"http": {"max-body-size": 1000}}``.

    The helpers (:meth:`create_database`, :meth:`query`, :meth:`write_lines`)
    use the v1 HTTP API through :mod:`urllib` only.
    """

    name = "influxd"

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        rpc_port: int | None = None,
        config_overrides: ConfigSections | None = None,
        start_timeout_seconds: float = SERVER_START_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(workdir, port=port, start_timeout_seconds=start_timeout_seconds)
        self.rpc_port = rpc_port if rpc_port is not None else free_port()
        self.config_overrides = {k: dict(v) for k, v in (config_overrides or {}).items()}
        self.config_path = self.workdir / "influxdb.conf"
        self.meta_dir = self.workdir / "meta"
        self.data_dir = self.workdir / "data"
        self.wal_dir = self.workdir / "wal"
        # influxd logs to stderr only; the console log is its log.
        self.log_path = self.console_log_path

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    def config_sections(self) -> dict[str, dict[str, ConfigValue]]:
        """The configuration as ``{section: {key: value}}`` (``""`` = top level)."""
        sections: dict[str, dict[str, ConfigValue]] = {
            "": {
                "reporting-enabled": False,
                # RPC/backup service; its default 8088 is taken by a system influxd.
                "bind-address": f"{self.host}:{self.rpc_port}",
            },
            "meta": {"dir": str(self.meta_dir), "logging-enabled": False},
            "data": {
                "dir": str(self.data_dir),
                "wal-dir": str(self.wal_dir),
                # fsync every write before the 204: acknowledged writes survive a SIGKILL.
                "wal-fsync-delay": "0s",
                "query-log-enabled": False,
            },
            "http": {
                "enabled": True,
                "bind-address": f"{self.host}:{self.port}",
                "auth-enabled": False,
                # Per-request access logs would swamp the log in bulk tests.
                "log-enabled": False,
                "pprof-enabled": False,
            },
            # No _internal database: it adds writes, series and noise to every test.
            "monitor": {"store-enabled": False},
            "subscriber": {"enabled": False},
            "logging": {"level": "info", "suppress-logo": True},
        }
        for section, values in self.config_overrides.items():
            sections.setdefault(section, {}).update(values)
        return sections

    def config_text(self) -> str:
        """The TOML configuration this server is started with."""
        out = ["# Generated by tests/harness/services.py"]
        for section, values in self.config_sections().items():
            if section:
                out.append(f"\n[{section}]")
            out += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
        return "\n".join(out) + "\n"

    def _choose_new_ports(self) -> None:
        self.port = free_port()
        self.rpc_port = free_port()

    def _write_config(self) -> None:
        self.config_path.write_text(self.config_text())

    def _environment(self) -> dict[str, str]:
        # INFLUXDB_* variables override the config file; keep the test config authoritative.
        return {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}

    def _command(self) -> list[str]:
        require_binary(INFLUXD_BINARY)
        return [str(INFLUXD_BINARY), "run", "-config", str(self.config_path)]

    def _probe(self) -> bool:
        # influxd opens its HTTP listener only after meta and shards (WAL replay) are
        # loaded, so a 204 from /ping means writes and queries will work.
        return self.ping(timeout_seconds=PROBE_TIMEOUT_SECONDS)

    # -- HTTP API helpers -------------------------------------------------------------

    def ping(self, timeout_seconds: float = PROBE_TIMEOUT_SECONDS) -> bool:
        """Whether ``GET /ping`` answers 204 within the timeout."""
        try:
            result = http_request("GET", f"{self.url}/ping", timeout_seconds=timeout_seconds)
        except (OSError, urllib.error.URLError):
            return False
        return result.status == 204

    def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HTTPResult:
        """A raw HTTP request to this server; the status is returned, never raised."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        return http_request(method, f"{self.url}{path}{query}", body=body, headers=headers)

    def query(self, db: str | None, q: str, *, epoch: str | None = None) -> dict[str, Any]:
        """Run InfluxQL ``q`` (POST /query) and return the decoded JSON.

        Raises :class:`InfluxDBError` on a non-200 status or if any statement failed.
        ``epoch`` (``"ns"``, ``"ms"``, ``"s"``…) returns integer timestamps instead
        of RFC 3339 strings.
        """
        params = {"q": q}
        if db is not None:
            params["db"] = db
        if epoch is not None:
            params["epoch"] = epoch
        # POST: InfluxDB 1.x refuses CREATE/DROP/… over GET.
        result = self.request(
            "POST",
            "/query",
            body=urllib.parse.urlencode(params).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        if result.status != 200:
            raise InfluxDBError(f"query {q!r} -> HTTP {result.status}: {result.text}", result)
        decoded: dict[str, Any] = json.loads(result.body)
        errors = [decoded["error"]] if "error" in decoded else []
        errors += [r["error"] for r in decoded.get("results", []) if "error" in r]
        if errors:
            raise InfluxDBError(f"query {q!r} failed: {'; '.join(errors)}", result)
        return decoded

    def create_database(self, name: str) -> None:
        """``CREATE DATABASE`` (idempotent in InfluxDB 1.x)."""
        self.query(None, f"CREATE DATABASE {_quote_identifier(name)}")

    def drop_database(self, name: str) -> None:
        """``DROP DATABASE`` (no error if it does not exist)."""
        self.query(None, f"DROP DATABASE {_quote_identifier(name)}")

    def write_lines(
        self,
        db: str,
        lines: str | bytes,
        precision: str = "ns",
        *,
        retention_policy: str | None = None,
    ) -> HTTPResult:
        """POST line protocol to ``/write``; raise :class:`InfluxDBError` unless 204.

        A 204 means every point is durable (WAL fsynced, see ``wal-fsync-delay``).
        Use :meth:`request` to inspect a deliberate 400 partial write.
        """
        params = {"db": db, "precision": precision}
        if retention_policy is not None:
            params["rp"] = retention_policy
        body = lines.encode() if isinstance(lines, str) else lines
        result = self.request("POST", "/write", params, body=body)
        if result.status != 204:
            raise InfluxDBError(f"write to {db!r} -> HTTP {result.status}: {result.text}", result)
        return result

    def series_values(self, db: str, q: str, *, epoch: str | None = "ns") -> list[list[Any]]:
        """All ``values`` rows of all series of the first statement of ``q``."""
        result = self.query(db, q, epoch=epoch)["results"][0]
        return [row for series in result.get("series", []) for row in series["values"]]


# ---------------------------------------------------------------------------------------
# Factories (several servers per test, or custom configuration)
# ---------------------------------------------------------------------------------------


ServiceT = TypeVar("ServiceT", bound=ServiceProcess)


class ServiceFactory(Generic[ServiceT]):
    """Creates started servers in fresh directories and tears them all down."""

    def __init__(self, make_dir: Callable[[str], Path], build: Callable[..., ServiceT]) -> None:
        self._make_dir = make_dir
        self._build = build
        self.servers: list[ServiceT] = []

    def __call__(self, *, start: bool = True, **kwargs: Any) -> ServiceT:
        """Build a server (keyword arguments go to its constructor) and start it."""
        server = self._build(self._make_dir(self._build.__name__.lower()), **kwargs)
        self.servers.append(server)
        if start:
            server.start()
        return server

    def close(self) -> None:
        """Stop every server (SIGKILL any that does not stop in time), even if one fails."""
        first_error: BaseException | None = None
        for server in reversed(self.servers):
            try:
                server.stop()
            except Exception as error:
                first_error = first_error or error
            finally:
                server.kill()
        if first_error is not None:
            raise first_error


class MosquittoFactory(ServiceFactory[MosquittoServer]):
    """``factory(extra_config=[...], allow_anonymous=False, port=...) -> MosquittoServer``."""

    def __init__(self, make_dir: Callable[[str], Path]) -> None:
        super().__init__(make_dir, MosquittoServer)


class InfluxDBFactory(ServiceFactory[InfluxDBServer]):
    """``factory(config_overrides={...}, port=...) -> InfluxDBServer``."""

    def __init__(self, make_dir: Callable[[str], Path]) -> None:
        super().__init__(make_dir, InfluxDBServer)


# ---------------------------------------------------------------------------------------
# PostgreSQL (an existing server; a fresh database per session)
# ---------------------------------------------------------------------------------------

POSTGRES_URL_ENV = "VITALGATE_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_CONNECT_TIMEOUT_SECONDS = 3
POSTGRES_COMMAND_TIMEOUT_SECONDS = 30.0


class PostgresUnavailable(ServiceError):
    """No usable PostgreSQL server or driver; the message says what was tried."""


def postgres_driver() -> str | None:
    """SQLAlchemy driver name for the installed DB-API module (psycopg 3 preferred)."""
    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        return driver
    return None


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe for skip/error messages)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _libpq_url(url: str) -> str:
    """Turn ``postgresql+driver://…`` (SQLAlchemy style) into a libpq URL."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgresql", "postgres"):
        raise PostgresUnavailable(f"not a PostgreSQL URL: {redact_url(url)}")
    return urllib.parse.urlunsplit(parts._replace(scheme="postgresql"))


def _pg_identifier(name: str) -> str:
    escaped = name.replace('"', '""')
    return f'"{escaped}"'


def _with_database(url: str, database: str, scheme: str | None = None) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(
        parts._replace(path=f"/{database}", scheme=scheme or parts.scheme)
    )


class PostgresDatabase:
    """A uniquely named database on an existing PostgreSQL server.

    Administration (CREATE/DROP DATABASE, reachability) uses the installed driver
    (psycopg 3 or psycopg2), or the ``psql`` client if there is no driver.
    """

    def __init__(self, admin_url: str, name: str | None = None) -> None:
        self.admin_url = _libpq_url(admin_url)
        self.name = name or unique_name("vitalgate_test")
        self.created = False

    def _execute(self, sql: str) -> None:
        driver = postgres_driver()
        if driver == "psycopg":
            psycopg = importlib.import_module("psycopg")
            with psycopg.connect(
                self.admin_url, autocommit=True, connect_timeout=POSTGRES_CONNECT_TIMEOUT_SECONDS
            ) as conn:
                conn.execute(sql)
            return
        if driver == "psycopg2":
            psycopg2 = importlib.import_module("psycopg2")
            conn = psycopg2.connect(
                self.admin_url, connect_timeout=POSTGRES_CONNECT_TIMEOUT_SECONDS
            )
            try:
                # CREATE/DROP DATABASE cannot run inside a transaction.
                conn.autocommit = True
                with conn.cursor() as cursor:
                    cursor.execute(sql)
            finally:
                conn.close()
            return
        psql = shutil.which("psql")
        if psql is None:
            raise PostgresUnavailable("neither psycopg, psycopg2 nor the psql client is installed")
        env = {**os.environ, "PGCONNECT_TIMEOUT": str(POSTGRES_CONNECT_TIMEOUT_SECONDS)}
        result = subprocess.run(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.admin_url, "-c", sql],
            capture_output=True,
            text=True,
            env=env,
            timeout=POSTGRES_COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
        if result.returncode != 0:
            raise PostgresUnavailable(result.stderr.strip() or f"psql exited {result.returncode}")

    def check_reachable(self) -> None:
        """Raise :class:`PostgresUnavailable` unless ``SELECT 1`` works."""
        parts = urllib.parse.urlsplit(self.admin_url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 5432
        # A TCP check first gives a fast, clear answer when nothing listens (no unix
        # sockets here: the harness always talks TCP).
        if not is_port_open(host, port, POSTGRES_CONNECT_TIMEOUT_SECONDS):
            raise PostgresUnavailable(f"nothing listens on {host}:{port}")
        try:
            self._execute("SELECT 1")
        except PostgresUnavailable:
            raise
        except Exception as error:  # the driver's own error types are not importable here
            raise PostgresUnavailable(f"{type(error).__name__}: {error}") from error

    def create(self) -> None:
        """Create the database (fails if it exists)."""
        self._execute(f"CREATE DATABASE {_pg_identifier(self.name)}")
        self.created = True

    def drop(self) -> None:
        """Drop the database, disconnecting any session still using it."""
        if not self.created:
            return
        name = _pg_identifier(self.name)
        try:
            # WITH (FORCE) (PostgreSQL 13+) ends pooled connections a test left open.
            self._execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except Exception:
            self._execute(f"DROP DATABASE IF EXISTS {name}")
        self.created = False

    def sqlalchemy_url(self, driver: str) -> str:
        """``postgresql+<driver>://user@host:port/<name>`` for this database."""
        return _with_database(self.admin_url, self.name, scheme=f"postgresql+{driver}")


def find_postgres(env: Mapping[str, str] | None = None) -> PostgresDatabase:
    """Pick a reachable server: ``$VITALGATE_TEST_POSTGRES_URL`` if set, else local trust auth.

    An explicitly configured URL is the only one tried (testing silently against
    another server would be worse than skipping). Raises :class:`PostgresUnavailable`
    naming every URL tried and why it failed.
    """
    env = os.environ if env is None else env
    configured = env.get(POSTGRES_URL_ENV, "").strip()
    candidates: Sequence[str] = [configured] if configured else [DEFAULT_POSTGRES_ADMIN_URL]
    failures = []
    for url in candidates:
        try:
            admin_url = _libpq_url(url)
            if not urllib.parse.urlsplit(admin_url).path.strip("/"):
                admin_url = _with_database(admin_url, "postgres")
            database = PostgresDatabase(admin_url)
            database.check_reachable()
        except PostgresUnavailable as error:
            failures.append(f"{redact_url(url)}: {error}")
            continue
        return database
    source = f"${POSTGRES_URL_ENV}" if configured else f"default (${POSTGRES_URL_ENV} unset)"
    raise PostgresUnavailable(
        f"no usable PostgreSQL server, tried {source}: " + "; ".join(failures)
    )
