"""A local single-node Apache Kafka broker (KRaft mode, no ZooKeeper) on 127.0.0.1.

Flow:

1. ``ensure_jars()`` runs ``mvn dependency:copy-dependencies`` on ``deploy/kafka/pom.xml``,
   which copies the real broker's jars from Maven Central into
   ``<cache>/kafka-<KAFKA_VERSION>/libs``. A marker file written after a complete copy
   makes every later call free (until the pom changes).
2. ``start()`` writes ``<state>/server.properties`` (one process that is both broker and
   controller), formats ``<state>/data`` with ``kafka.tools.StorageTool`` the first time,
   launches ``java -cp '<libs>/*' kafka.Kafka server.properties`` in a session of its own
   (so it outlives the Python process that started it), records its pid in
   ``<state>/broker.pid`` and waits until a kafka-python client can list topics.
   A broker already running from the same state dir is reused, not started twice.
3. ``stop()`` sends SIGTERM to the broker's process group and SIGKILL if it has not
   exited in time.

With ``start(..., sasl_users={"alice": "alice-secret"})`` (an instance for tests of
the Kafka security settings) the client listener is ``SASL_PLAINTEXT`` instead of
``PLAINTEXT``, accepting PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 for those users: the
PLAIN users are in the listener's JAAS config, the SCRAM credentials are written into
the metadata log when the data dir is formatted (``--add-scram``), so a state dir keeps
the SCRAM users it was first formatted with. The broker's own user (inter-broker
traffic and the readiness probe) gets a random password, kept with the PLAIN users in
``<state>/server.properties`` and in ``<state>/sasl-client.json``, both mode 0600.
This is a development broker: PLAIN over SASL_PLAINTEXT sends passwords in the clear.

The rest of the project calls ``bootstrap_servers()``: ``$KAFKA_BOOTSTRAP_SERVERS`` when
set (an external cluster), else the address of this local broker, started on demand.

Environment:

* ``ENTITYSTREAM_CACHE``: cache root (default ``~/.cache/entitystream``).
* ``ENTITYSTREAM_BROKER_STATE``: state dir (default ``<cache>/broker``) holding
  ``server.properties``, ``data/``, ``broker.pid``, ``broker.log`` (java's stdout and
  stderr: warnings, errors, JVM crashes) and ``server.log`` (the broker's full log).
* ``ENTITYSTREAM_BROKER_PORT``: client port (default 19092); the controller uses port + 1.
* ``KAFKA_BOOTSTRAP_SERVERS``: use this cluster instead of the local broker.

Command line: ``python -m deploy.broker start|stop|status``. Needs ``java`` (17+) and,
the first time only, ``mvn``; Python-side only the stdlib and kafka-python.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

KAFKA_VERSION = "4.1.1"  # must match <kafka.version> in deploy/kafka/pom.xml
HOST = "127.0.0.1"
DEFAULT_PORT = 19092
JVM_OPTIONS = ["-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true"]

_KAFKA_DIR = Path(__file__).resolve().parent / "kafka"
POM = _KAFKA_DIR / "pom.xml"
LOG4J_CONFIG = _KAFKA_DIR / "log4j2.properties"

log = logging.getLogger(__name__)

# Brokers launched by this Python process, kept so that they are reaped when they exit.
_children: dict[int, subprocess.Popen] = {}


class BrokerError(RuntimeError):
    """The local broker could not be fetched, started or stopped; the message says what to do."""


# --------------------------------------------------------------------------- locations


def cache_dir() -> Path:
    """``$ENTITYSTREAM_CACHE``, else ``~/.cache/entitystream``."""
    env = os.environ.get("ENTITYSTREAM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "entitystream"


def resolve_state_dir(path: str | os.PathLike | None = None) -> Path:
    """The broker's state dir: ``path``, else ``$ENTITYSTREAM_BROKER_STATE``, else ``<cache>/broker``."""
    if path is None:
        path = os.environ.get("ENTITYSTREAM_BROKER_STATE") or cache_dir() / "broker"
    # Absolute, because the path is part of the broker's command line that identifies it.
    return Path(path).expanduser().resolve()


# --------------------------------------------------------------------------- jars


def ensure_jars() -> Path:
    """Fetch the Kafka jars with Maven once; return the directory holding them."""
    home = cache_dir() / f"kafka-{KAFKA_VERSION}"
    libs, marker = home / "libs", home / "jars.complete"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    if libs.is_dir() and _read(marker) == digest:
        return libs
    with _locked(home / ".lock"):
        if libs.is_dir() and _read(marker) == digest:  # another process just finished
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError(
                "Maven ('mvn') is not on PATH; it is needed once to fetch the Kafka jars. "
                "Install it (Debian: apt-get install maven) and retry."
            )
        partial = home / "libs.partial"
        shutil.rmtree(partial, ignore_errors=True)
        cmd = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
               f"-DoutputDirectory={partial}"]
        log.info("Fetching the Kafka %s jars into %s (first time only)...", KAFKA_VERSION, libs)
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, check=False)
        if proc.returncode != 0 or not any(partial.glob("kafka_2.13-*.jar")):
            raise BrokerError(
                f"Fetching the Kafka {KAFKA_VERSION} jars failed: `{shlex.join(cmd)}` exited "
                f"with status {proc.returncode}. Its output ends with:\n{_last_lines(proc.stdout)}\n"
                "Check that Maven Central is reachable (and ~/.m2/settings.xml), then retry."
            )
        marker.unlink(missing_ok=True)
        shutil.rmtree(libs, ignore_errors=True)
        partial.rename(libs)
        marker.write_text(digest)
    return libs


# --------------------------------------------------------------------------- broker


def start(port: int | None = None, controller_port: int | None = None, timeout_s: float = 90,
          state_dir: str | os.PathLike | None = None,
          sasl_users: dict[str, str] | None = None) -> str:
    """Start the local broker unless it already runs; return its address ``127.0.0.1:PORT``.

    ``sasl_users`` (``{username: password}``, default None: a PLAINTEXT listener) makes
    the client listener SASL_PLAINTEXT with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 for
    those users (see the module docstring).

    ``port`` defaults to ``$ENTITYSTREAM_BROKER_PORT`` or 19092, ``controller_port`` to
    port + 1, ``state_dir`` to ``resolve_state_dir()``. If a broker from the state dir
    already runs, its address is returned once it answers (``BrokerError`` if it runs on
    another port than one asked for explicitly). Raises ``BrokerError`` (a ``RuntimeError``)
    with the tail of broker.log if the broker does not answer within ``timeout_s``.
    """
    state = resolve_state_dir(state_dir)
    explicit = port is not None or bool(os.environ.get("ENTITYSTREAM_BROKER_PORT"))
    port, controller_port = _ports(port, controller_port)
    if sasl_users is not None:
        _check_sasl_users(sasl_users)
    deadline = time.monotonic() + timeout_s
    libs = ensure_jars()
    state.mkdir(parents=True, exist_ok=True)
    with _locked(state / ".lock"):
        pid = _running_pid(state)
        if pid is not None:
            running_port = _configured_port(state)
            if explicit and running_port != port:
                raise BrokerError(
                    f"The broker from {state} already runs on {HOST}:{running_port} (pid {pid}), "
                    f"not on port {port}. Use that address, or run `python -m deploy.broker stop` "
                    "first to restart it on another port."
                )
            if sasl_users is not None and not (state / _SASL_CLIENT).exists():
                raise BrokerError(
                    f"The broker from {state} already runs (pid {pid}) without SASL. Stop it "
                    "(`python -m deploy.broker stop`) or use another state dir for a SASL broker."
                )
            address = f"{HOST}:{running_port}"
            _wait_ready(address, pid, state, deadline)
            return address

        for p in (port, controller_port):
            if _listening(p):
                raise BrokerError(
                    f"{HOST}:{p} is already in use by another process. Pick free ports with "
                    "ENTITYSTREAM_BROKER_PORT (the controller uses port + 1) or start(port=...), "
                    "or set KAFKA_BOOTSTRAP_SERVERS to use an existing Kafka."
                )
        java = _java()
        properties = _write_properties(state, port, controller_port, sasl_users)
        _format_storage(java, libs, state, properties, sasl_users)
        pid = _launch(java, libs, state, properties)
        address = f"{HOST}:{port}"
        try:
            _wait_ready(address, pid, state, deadline)
        except BrokerError:
            _terminate(pid, state, timeout_s=10)  # leave nothing half-started behind
            raise
        log.debug("Kafka %s broker ready at %s (pid %d)", KAFKA_VERSION, address, pid)
        return address


def stop(timeout_s: float = 30, state_dir: str | os.PathLike | None = None) -> bool:
    """Stop the broker running from the state dir; return whether one was running."""
    state = resolve_state_dir(state_dir)
    pid = _running_pid(state)
    if pid is None:
        return False
    _terminate(pid, state, timeout_s)
    return True


def status(state_dir: str | os.PathLike | None = None) -> dict:
    """Describe the broker of the state dir, without contacting it.

    Keys: running, pid, bootstrap (None unless running), version, state_dir, log (java's
    stdout/stderr), server_log (the broker's own log).
    """
    state = resolve_state_dir(state_dir)
    pid = _running_pid(state)
    port = _configured_port(state) if pid is not None else None
    return {
        "running": pid is not None,
        "pid": pid,
        "bootstrap": f"{HOST}:{port}" if port is not None else None,
        "version": KAFKA_VERSION,
        "state_dir": str(state),
        "log": str(state / "broker.log"),
        "server_log": str(state / "server.log"),
    }


def bootstrap_servers() -> str:
    """``$KAFKA_BOOTSTRAP_SERVERS`` if set, else the local broker's address (started if needed)."""
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip() or start()


# --------------------------------------------------------------------------- helpers


def _ports(port: int | None, controller_port: int | None) -> tuple[int, int]:
    if port is None:
        env = os.environ.get("ENTITYSTREAM_BROKER_PORT", "").strip()
        try:
            port = int(env) if env else DEFAULT_PORT
        except ValueError:
            raise BrokerError(
                f"ENTITYSTREAM_BROKER_PORT={env!r} is not a port number; set it to e.g. 19092 or unset it."
            ) from None
    if controller_port is None:
        controller_port = port + 1
    if not (0 < port < 65536 and 0 < controller_port < 65536) or port == controller_port:
        raise BrokerError(f"Invalid ports {port}/{controller_port}: need two different ports in 1..65535.")
    return port, controller_port


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise BrokerError(
            f"Java is not on PATH; Kafka {KAFKA_VERSION} needs Java 17+. Install it "
            "(Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME."
        )
    return java


def _java_cmd(java: str, libs: Path, state: Path) -> list[str]:
    return [java, *JVM_OPTIONS, f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={state}", "-cp", f"{libs}/*"]


def _write_properties(state: Path, port: int, controller_port: int,
                      sasl_users: dict[str, str] | None = None) -> Path:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(state / "data"),
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        "group.initial.rebalance.delay.ms": "0",
        # Replays carry historical timestamps (1987, 2025): time-based retention
        # would delete them at once, so this development broker keeps everything.
        "log.retention.ms": "-1",
        # A single broker: every internal topic has one replica.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",  # the first consumer group is ready sooner
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
    }
    (state / _SASL_CLIENT).unlink(missing_ok=True)
    if sasl_users is not None:
        settings.update(_sasl_settings(state, port, controller_port, sasl_users))
    path = state / "server.properties"
    lines = [f"# Written by deploy/broker.py for Kafka {KAFKA_VERSION}; rewritten on every start."]
    text = "\n".join(lines + [f"{k}={v}" for k, v in settings.items()]) + "\n"
    if sasl_users is None:
        path.write_text(text)
    else:  # holds passwords: readable by the owner only
        _write_private(path, text)
    return path


# SASL (optional): a SASL_PLAINTEXT client listener for the security tests.
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_SASL_CLIENT = "sasl-client.json"  # the broker user's client settings, for the probe
_SASL_BROKER_USER = "entitystream-broker"
_SASL_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+~!@#%^*")


def _check_sasl_users(users: dict[str, str]) -> None:
    """Names and passwords go into JAAS strings and ``--add-scram`` arguments, unquoted
    characters only; the error names the user, never the password."""
    if not isinstance(users, dict) or not users:
        raise BrokerError("sasl_users must be a non-empty dict {username: password}.")
    for name, password in users.items():
        if not name or not set(name) <= _SASL_SAFE or "=" in name:
            raise BrokerError(f"SASL user name {name!r}: use letters, digits and ._-+~!@#%^* only.")
        if name == _SASL_BROKER_USER:
            raise BrokerError(f"SASL user name {name!r} is the broker's own; pick another.")
        if not isinstance(password, str) or not password or not set(password) <= _SASL_SAFE:
            raise BrokerError(f"The password of SASL user {name!r} must be non-empty and use "
                              "letters, digits and ._-+~!@#%^* only.")


def _sasl_settings(state: Path, port: int, controller_port: int,
                   users: dict[str, str]) -> dict[str, str]:
    import secrets
    broker_password = secrets.token_hex(16)
    plain_users = " ".join(f'user_{name}="{password}"' for name, password in
                           {_SASL_BROKER_USER: broker_password, **users}.items())
    prefix = "listener.name.sasl_plaintext"
    _write_private(state / _SASL_CLIENT, json.dumps({
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
        "sasl_plain_username": _SASL_BROKER_USER, "sasl_plain_password": broker_password}))
    return {
        "listeners": f"SASL_PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"SASL_PLAINTEXT://{HOST}:{port}",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        "sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS),
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        f"{prefix}.plain.sasl.jaas.config":
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{_SASL_BROKER_USER}" password="{broker_password}" {plain_users};',
        # Server side only: SCRAM credentials come from the metadata log.
        f"{prefix}.scram-sha-256.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        f"{prefix}.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
    }


def _scram_arguments(users: dict[str, str] | None) -> list[str]:
    arguments = []
    for name, password in sorted((users or {}).items()):
        for mechanism in SASL_MECHANISMS[1:]:
            arguments += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
    return arguments


def _write_private(path: Path, text: str) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _client_security(state: Path) -> dict:
    """The probe's kafka-python security settings for the broker of ``state`` ({} without SASL)."""
    text = _read(state / _SASL_CLIENT)
    return json.loads(text) if text else {}


def _configured_port(state: Path) -> int | None:
    """The client port in the state dir's server.properties."""
    for line in _read(state / "server.properties").splitlines():
        if line.startswith("advertised.listeners="):
            return int(line.rsplit(":", 1)[1])
    return None


def _format_storage(java: str, libs: Path, state: Path, properties: Path,
                    sasl_users: dict[str, str] | None = None) -> None:
    """Format the data dir once. No --standalone: that is for a dynamic quorum
    (controller.quorum.bootstrap.servers); ours is the static controller.quorum.voters.
    SCRAM users are written into the metadata log here, so they are fixed at format time."""
    if (state / "data" / "meta.properties").exists():
        if sasl_users is not None:
            _check_scram_users(state, sasl_users)
        return
    tool = _java_cmd(java, libs, state) + ["kafka.tools.StorageTool"]
    cluster_id = _run(tool + ["random-uuid"]).strip().splitlines()[-1]
    _run(tool + ["format", "-t", cluster_id, "-c", str(properties), "--ignore-formatted"]
         + _scram_arguments(sasl_users))
    if sasl_users is not None:
        (state / "scram-users.sha256").write_text(_users_digest(sasl_users))


def _users_digest(users: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(sorted(users.items())).encode()).hexdigest()


def _check_scram_users(state: Path, users: dict[str, str]) -> None:
    if _read(state / "scram-users.sha256") != _users_digest(users):
        raise BrokerError(
            f"The data dir {state / 'data'} was formatted with other SCRAM users (or without "
            "SASL); SCRAM users are created only when the data dir is formatted. Delete "
            f"{state / 'data'} (its topics are lost) or use another state dir."
        )


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        # --add-scram arguments hold passwords: not repeated in the message.
        shown = [a if i == 0 or cmd[i - 1] != "--add-scram" else "<credentials>"
                 for i, a in enumerate(cmd)]
        raise BrokerError(
            f"`{shlex.join(shown)}` failed with status {proc.returncode}:\n"
            f"{_last_lines(proc.stdout + proc.stderr)}\n"
            "If the data dir is damaged, run `python -m deploy.broker stop` and delete it."
        )
    return proc.stdout


def _launch(java: str, libs: Path, state: Path, properties: Path) -> int:
    cmd = _java_cmd(java, libs, state) + ["kafka.Kafka", str(properties)]
    with open(state / "broker.log", "wb") as out:  # one start's output; server.log keeps history
        out.write(f"$ {shlex.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(cmd, cwd=state, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    _children[proc.pid] = proc
    (state / "broker.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def _wait_ready(address: str, pid: int, state: Path, deadline: float) -> None:
    port = int(address.rsplit(":", 1)[1])
    problem = "its port never opened"
    while True:
        if not _is_broker(pid, state):
            raise BrokerError(
                f"The Kafka broker (pid {pid}) exited while starting. End of {state / 'broker.log'}:\n"
                f"{_tail(state / 'broker.log')}\nFull log: {state / 'server.log'}. Fix the cause and "
                f"retry; to start from scratch, delete {state / 'data'}."
            )
        if _listening(port):
            problem = _probe(address, timeout_ms=max(1000, int((deadline - time.monotonic()) * 1000)),
                             security=_client_security(state))
            if problem is None:
                return
        if time.monotonic() >= deadline:
            raise BrokerError(
                f"The Kafka broker (pid {pid}) did not become ready at {address} in time "
                f"({problem}). End of {state / 'broker.log'}:\n{_tail(state / 'broker.log')}\n"
                f"Full log: {state / 'server.log'}. On a slow machine pass a larger timeout_s "
                "(or --timeout); otherwise run `python -m deploy.broker stop` and retry."
            )
        time.sleep(0.2)


def _probe(address: str, timeout_ms: int, security: dict | None = None) -> str | None:
    """None if a kafka-python admin client can list topics at ``address``, else what went wrong.
    ``security``: kafka-python security settings (a SASL broker's own user)."""
    try:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError
    except ImportError as exc:
        raise BrokerError("kafka-python is needed to check the broker: pip install kafka-python") from exc
    timeout_ms = min(timeout_ms, 5000)
    config = {"bootstrap_servers": address, "client_id": "entitystream-broker-probe",
              "request_timeout_ms": timeout_ms, **(security or {})}
    if "bootstrap_timeout_ms" in KafkaAdminClient.DEFAULT_CONFIG:  # kafka-python >= 3
        config["bootstrap_timeout_ms"] = timeout_ms
    with _quiet_probe(config["client_id"]):
        try:
            admin = KafkaAdminClient(**config)
        except (KafkaError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"
        try:
            admin.list_topics()
            return None
        except (KafkaError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            admin.close()


class _ProbeThreads(logging.Filter):
    """Drops the records of the probe's threads: while the broker starts, kafka-python
    logs each refused or dropped connection as an ERROR before it retries; what went
    wrong is returned instead (and told in ``BrokerError`` if it never gets ready)."""

    def __init__(self, client_id):
        super().__init__()
        self._threads = {threading.current_thread().name, f"kafka-io-{client_id}"}

    def filter(self, record):
        return record.threadName not in self._threads


@contextlib.contextmanager
def _quiet_probe(client_id):
    quiet = _ProbeThreads(client_id)
    loggers = [logging.getLogger(n) for n in ("kafka", *sorted(
        n for n in logging.root.manager.loggerDict if n.startswith("kafka.")))]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)


def _terminate(pid: int, state: Path, timeout_s: float) -> None:
    """SIGTERM the broker's process group (a clean shutdown), SIGKILL after ``timeout_s``."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10)):
        try:
            os.killpg(pid, sig)  # start_new_session=True made the broker its group's leader
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            raise BrokerError(
                f"Not allowed to signal the broker (pid {pid}): {exc}. Stop it as the user who started it."
            ) from exc
        end = time.monotonic() + wait_s
        while time.monotonic() < end:
            if not _is_broker(pid, state):
                (state / "broker.pid").unlink(missing_ok=True)
                return
            time.sleep(0.1)
        if sig == signal.SIGTERM:
            log.warning("Kafka broker (pid %d) ignored SIGTERM for %ss; killing it", pid, timeout_s)
    raise BrokerError(f"The Kafka broker (pid {pid}) survived SIGKILL; check `ps -p {pid}`.")


def _running_pid(state: Path) -> int | None:
    """The pid of the broker running from ``state``; removes a stale pid file."""
    pid_file = state / "broker.pid"
    text = _read(pid_file).strip()
    if not text:
        return None
    if text.isdigit() and _is_broker(int(text), state):
        return int(text)
    pid_file.unlink(missing_ok=True)
    return None


def _is_broker(pid: int, state: Path) -> bool:
    """Whether ``pid`` is alive and is the broker of ``state`` (not a reused pid)."""
    child = _children.get(pid)
    if child is not None:  # launched by this process: poll() knows (and reaps it)
        if child.poll() is None:
            return True
        del _children[pid]
        return False
    proc = Path("/proc")
    if not proc.is_dir():  # no procfs (macOS): trust the pid
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for _ in range(20):
        try:
            cmdline = (proc / str(pid) / "cmdline").read_bytes()
            stat = (proc / str(pid) / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return False
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):  # exited, not yet reaped
            return False
        if cmdline:
            argv = cmdline.split(b"\0")
            return b"kafka.Kafka" in argv and str(state / "server.properties").encode() in argv
        time.sleep(0.05)  # empty for a moment while java is being exec'd
    return False


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (the file descriptor is not inherited by java)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _last_lines(text: str, count: int = 30) -> str:
    return "\n".join(text.rstrip().splitlines()[-count:]) or "(no output)"


def _tail(path: Path, count: int = 30) -> str:
    return _last_lines(_read(path), count)


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """``python -m deploy.broker start|stop|status``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m deploy.broker",
                                     description=f"Local single-node Kafka {KAFKA_VERSION} broker (KRaft).")
    parser.add_argument("--state-dir", help="state dir (default: $ENTITYSTREAM_BROKER_STATE or <cache>/broker)")
    commands = parser.add_subparsers(dest="command", required=True)
    start_cmd = commands.add_parser("start", help="start the broker unless it already runs")
    start_cmd.add_argument("--port", type=int, help="client port (default: $ENTITYSTREAM_BROKER_PORT or 19092)")
    start_cmd.add_argument("--controller-port", type=int, help="controller port (default: port + 1)")
    start_cmd.add_argument("--timeout", type=float, default=90, help="seconds to wait for readiness")
    start_cmd.add_argument("--sasl-users-file", metavar="JSON",
                           help='a SASL_PLAINTEXT client listener (PLAIN, SCRAM-SHA-256/512) for '
                                'the users of this JSON file, {"alice": "alice-secret", ...}')
    stop_cmd = commands.add_parser("stop", help="stop the broker")
    stop_cmd.add_argument("--timeout", type=float, default=30, help="seconds before SIGKILL")
    status_cmd = commands.add_parser("status", help="show the broker's state (exit status 1 if not running)")
    status_cmd.add_argument("--json", action="store_true", help="print the status as JSON")
    args = parser.parse_args(argv)

    logging.basicConfig(format="%(message)s")  # kafka-python: warnings only
    log.setLevel(logging.INFO)
    try:
        if args.command == "start":
            was_running = status(args.state_dir)["running"]
            users = None
            if args.sasl_users_file:
                try:
                    users = json.loads(Path(args.sasl_users_file).read_text())
                except (OSError, ValueError) as exc:
                    raise BrokerError(f"cannot read --sasl-users-file {args.sasl_users_file}: "
                                      f"{type(exc).__name__}; give a JSON object "
                                      '{"user": "password", ...}') from None
            address = start(args.port, args.controller_port, args.timeout, state_dir=args.state_dir,
                            sasl_users=users)
            info = status(args.state_dir)
            print(f"Kafka {KAFKA_VERSION} broker {'already running' if was_running else 'started'} at "
                  f"{address} (pid {info['pid']}; log {info['log']})")
        elif args.command == "stop":
            info = status(args.state_dir)
            if stop(args.timeout, state_dir=args.state_dir):
                print(f"Kafka broker stopped (pid {info['pid']}, state {info['state_dir']})")
            else:
                print(f"No Kafka broker running from {info['state_dir']}")
        else:
            info = status(args.state_dir)
            if args.json:
                print(json.dumps(info, indent=2))
            elif info["running"]:
                print(f"Kafka {KAFKA_VERSION} broker running at {info['bootstrap']} (pid {info['pid']}; "
                      f"state {info['state_dir']})")
            else:
                print(f"No Kafka broker running from {info['state_dir']}")
            return 0 if info["running"] else 1
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
