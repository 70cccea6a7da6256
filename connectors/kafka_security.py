"""Kafka connection security: TLS and SASL settings for every client, and a preflight.

``KafkaSecurity`` is one frozen object holding how to talk to the brokers:
``security_protocol`` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), the SASL
mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) with a user name and password,
and the TLS files. It is built from the environment (``from_env``), where flags
may override it (``add_arguments``/``from_args``), and checked when built: a
``ValueError`` names the bad value and the variable or flag that fixes it.
``client_config()`` gives the kafka-python keyword arguments that every
consumer, producer and admin client of the project receives.

The password is never shown: not by ``repr``/``str`` of the object, not in the
``repr`` of ``client_config()`` (its value is a ``str`` whose ``repr`` is
``'***'``), not in any error. It comes from ``KAFKA_SASL_PASSWORD`` or a file
(``KAFKA_SASL_PASSWORD_FILE``, ``--kafka-sasl-password-file``), never from a
flag's value, since command lines are visible to every user (``ps``).

``check_connection(bootstrap_servers, security)`` connects once before a
pipeline starts: kafka-python retries a rejected login silently until its own
timeout, so without it wrong credentials look like a hang. It raises
``KafkaPreflightError`` within seconds, naming the servers, protocol,
mechanism and user.

Environment: ``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_MECHANISM``,
``KAFKA_SASL_USERNAME``, ``KAFKA_SASL_PASSWORD`` or ``KAFKA_SASL_PASSWORD_FILE``,
``KAFKA_SSL_CAFILE``, ``KAFKA_SSL_CERTFILE``, ``KAFKA_SSL_KEYFILE``,
``KAFKA_SSL_CHECK_HOSTNAME`` (true/false). Empty values count as unset.

Example::

    security = KafkaSecurity(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                             username="alice", password=secret, ssl_cafile="ca.pem")
    check_connection("kafka:9093", security)
    KafkaConsumer(bootstrap_servers="kafka:9093", **security.client_config())
"""
import argparse
import dataclasses
import logging
import os
import pathlib
import time
import uuid
from typing import Mapping, Optional

__all__ = ["KafkaSecurity", "KafkaPreflightError", "check_connection", "add_arguments",
           "from_args", "PROTOCOLS", "MECHANISMS"]

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_SSL_FILES = {"ssl_cafile": "KAFKA_SSL_CAFILE", "ssl_certfile": "KAFKA_SSL_CERTFILE",
              "ssl_keyfile": "KAFKA_SSL_KEYFILE"}
_PASSWORD_HELP = ("KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE (or --kafka-sasl-password-file); "
                  "a password is never taken from a flag's value")


class _Secret(str):
    """A password as kafka-python needs it (a ``str``), shown as ``'***'`` by ``repr``:
    a client config dict that ends up in a log line or traceback does not leak it.

    Creating one (also by unpickling, in a worker) registers it with the log filter below:
    kafka-python's DEBUG logs print every request, SASL PLAIN's password included."""

    def __new__(cls, value):
        secret = super().__new__(cls, value)
        _REDACT.add(str(value))
        return secret

    def __repr__(self):
        return "'***'"

    def __reduce__(self):  # pickles as itself (Beam ships the config to its workers)
        return (_Secret, (str(self),))


class _RedactSecrets(logging.Filter):
    """Replaces every registered password in a record's message by ``***`` (in text and
    as it shows in the repr of bytes). Installed on the ``kafka`` loggers that print
    requests and raw bytes; costs nothing unless they log at DEBUG."""

    def __init__(self):
        super().__init__()
        self.secrets = frozenset()  # replaced, never changed: IO threads read it

    def add(self, secret):
        if secret and secret not in self.secrets:
            self.secrets = self.secrets | {secret}
            # A logger's filters see only its own records, not its children's.
            for name in ("kafka", "kafka.net.connection", "kafka.protocol.parser",
                         *[n for n in logging.root.manager.loggerDict if n.startswith("kafka.")]):
                logger = logging.getLogger(name)
                if self not in logger.filters:
                    logger.addFilter(self)

    def filter(self, record):
        message = record.getMessage()
        redacted = message
        for secret in self.secrets:
            for form in (secret, repr(secret.encode("utf-8"))[2:-1]):
                redacted = redacted.replace(form, "***")
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


_REDACT = _RedactSecrets()


class KafkaPreflightError(RuntimeError):
    """The brokers could not be reached or rejected the credentials; the message says why."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class KafkaSecurity:
    """How every Kafka client of the project connects.

    Args (keyword-only):
      security_protocol: PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL.
      sasl_mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; needed for SASL_*.
      username, password: the SASL credentials; needed for SASL_*.
      ssl_cafile: PEM file of the CA(s) that signed the brokers' certificates
        (default None: the system's CAs); SSL and SASL_SSL only.
      ssl_certfile, ssl_keyfile: the client certificate and key, for brokers
        that authenticate clients by TLS (default None).
      ssl_check_hostname: verify that the broker's certificate matches its host
        name (default True).
    """
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: Optional[str] = None
    username: Optional[str] = None
    password: Optional[str] = dataclasses.field(default=None, repr=False)
    ssl_cafile: Optional[str] = None
    ssl_certfile: Optional[str] = None
    ssl_keyfile: Optional[str] = None
    ssl_check_hostname: bool = True

    def __post_init__(self):
        protocol = self.security_protocol
        if protocol not in PROTOCOLS:
            msg = (f"Kafka security_protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}; "
                   "set KAFKA_SECURITY_PROTOCOL (or --kafka-security-protocol) to one of them")
            raise ValueError(msg)
        if self.sasl:
            if self.sasl_mechanism not in MECHANISMS:
                what = "needs a SASL mechanism" if not self.sasl_mechanism else (
                    f"cannot use SASL mechanism {self.sasl_mechanism!r}")
                msg = (f"Kafka security_protocol {protocol} {what}: set KAFKA_SASL_MECHANISM "
                       f"(or --kafka-sasl-mechanism) to one of {', '.join(MECHANISMS)}")
                raise ValueError(msg)
            if not self.username:
                msg = (f"Kafka SASL {self.sasl_mechanism} needs a user name: set "
                       "KAFKA_SASL_USERNAME (or --kafka-sasl-username)")
                raise ValueError(msg)
            if not self.password:
                msg = (f"Kafka SASL user {self.username!r} has no password: set {_PASSWORD_HELP}")
                raise ValueError(msg)
        else:
            given = [name for name in ("sasl_mechanism", "username", "password")
                     if getattr(self, name)]
            if given:
                msg = (f"Kafka {', '.join(given)} given but security_protocol is {protocol}, "
                       "which does not authenticate with SASL: set KAFKA_SECURITY_PROTOCOL to "
                       "SASL_PLAINTEXT or SASL_SSL, or unset the SASL settings")
                raise ValueError(msg)
        for name, variable in _SSL_FILES.items():
            path = getattr(self, name)
            if path is None:
                continue
            if not self.ssl:
                msg = (f"Kafka {name} {path!r} given but security_protocol is {protocol}, "
                       f"which does not use TLS: use SSL or SASL_SSL, or unset {variable}")
                raise ValueError(msg)
            if not pathlib.Path(path).is_file():
                msg = f"Kafka {name} {path!r} is not a file: set {variable} to a PEM file"
                raise ValueError(msg)
        if self.ssl_keyfile and not self.ssl_certfile:
            msg = (f"Kafka ssl_keyfile {self.ssl_keyfile!r} given without ssl_certfile: set "
                   "KAFKA_SSL_CERTFILE to the client certificate that goes with the key")
            raise ValueError(msg)

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def ssl(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def __repr__(self):
        fields = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)
                  if f.name != "password"]
        fields.insert(3, f"password={'***' if self.password else None!r}")
        return f"KafkaSecurity({', '.join(fields)})"

    def __str__(self):
        """For messages: protocol, mechanism and user; never the password."""
        text = self.security_protocol
        if self.sasl:
            text += f" {self.sasl_mechanism} as user {self.username!r}"
        if self.ssl and self.ssl_cafile:
            text += f" (CA {self.ssl_cafile})"
        return text

    def client_config(self) -> dict:
        """Keyword arguments for ``KafkaConsumer``, ``KafkaProducer`` and ``KafkaAdminClient``
        ({} for PLAINTEXT, so plain clients are built exactly as without security)."""
        if self.security_protocol == "PLAINTEXT":
            return {}
        config = {"security_protocol": self.security_protocol}
        if self.sasl:
            config.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.username,
                          sasl_plain_password=_Secret(self.password))
        if self.ssl:
            config["ssl_check_hostname"] = self.ssl_check_hostname
            config.update({name: getattr(self, name) for name in _SSL_FILES
                           if getattr(self, name)})
        return config

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None, *,
                 security_protocol=None, sasl_mechanism=None, username=None, password_file=None,
                 ssl_cafile=None, ssl_certfile=None, ssl_keyfile=None,
                 ssl_check_hostname=None) -> "KafkaSecurity":
        """Settings from ``environ`` (default ``os.environ``; see the module docstring);
        each keyword given (not None) wins over its variable: that is how flags apply."""
        env = os.environ if environ is None else environ

        def get(name):
            value = env.get(name, "").strip()
            return value or None

        protocol = security_protocol or get("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT"
        mechanism = sasl_mechanism or get("KAFKA_SASL_MECHANISM")
        check_hostname = ssl_check_hostname
        if check_hostname is None:
            check_hostname = _boolean(get("KAFKA_SSL_CHECK_HOSTNAME"), "KAFKA_SSL_CHECK_HOSTNAME")
        return cls(
            security_protocol=protocol.upper(),
            sasl_mechanism=mechanism.upper() if mechanism else None,
            username=username or get("KAFKA_SASL_USERNAME"),
            password=_password(env.get("KAFKA_SASL_PASSWORD") or None,
                               password_file or get("KAFKA_SASL_PASSWORD_FILE"),
                               from_flag=password_file is not None),
            ssl_cafile=ssl_cafile or get("KAFKA_SSL_CAFILE"),
            ssl_certfile=ssl_certfile or get("KAFKA_SSL_CERTFILE"),
            ssl_keyfile=ssl_keyfile or get("KAFKA_SSL_KEYFILE"),
            ssl_check_hostname=True if check_hostname is None else check_hostname)


def _boolean(value, variable):
    if value is None:
        return None
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{variable}={value!r} is not a boolean: set it to true or false")


def _password(value, path, from_flag):
    """The password from the variable or the file (a flag's file wins over the variable;
    both variables set is ambiguous). A file's one trailing newline is not part of it."""
    if path is None:
        return value
    if value is not None and not from_flag:
        raise ValueError("both KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE are set: "
                         "unset one of them")
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        msg = (f"cannot read the Kafka SASL password file {path!r} ({type(exc).__name__}): "
               "set KAFKA_SASL_PASSWORD_FILE (or --kafka-sasl-password-file) to a readable "
               "UTF-8 file holding only the password")
        raise ValueError(msg) from None
    password = text[:-1] if text.endswith("\n") else text
    password = password[:-1] if password.endswith("\r") else password
    if not password:
        raise ValueError(f"the Kafka SASL password file {path!r} is empty")
    return password


# --------------------------------------------------------------------------- flags


def add_arguments(parser: argparse.ArgumentParser):
    """``--kafka-security-protocol``, ``--kafka-sasl-mechanism``, ``--kafka-sasl-username``,
    ``--kafka-sasl-password-file`` and the TLS files; each defaults to its variable."""
    group = parser.add_argument_group(
        "Kafka security", "default: the KAFKA_* variables (docs/security.md); the password "
        "only from $KAFKA_SASL_PASSWORD or a file")
    group.add_argument("--kafka-security-protocol", choices=PROTOCOLS, type=str.upper,
                       help="default $KAFKA_SECURITY_PROTOCOL, else PLAINTEXT")
    group.add_argument("--kafka-sasl-mechanism", choices=MECHANISMS, type=str.upper,
                       help="default $KAFKA_SASL_MECHANISM")
    group.add_argument("--kafka-sasl-username", metavar="USER", help="default $KAFKA_SASL_USERNAME")
    group.add_argument("--kafka-sasl-password-file", metavar="PATH",
                       help="file holding the SASL password (default $KAFKA_SASL_PASSWORD_FILE, "
                            "else $KAFKA_SASL_PASSWORD)")
    group.add_argument("--kafka-ssl-cafile", metavar="PEM", help="default $KAFKA_SSL_CAFILE")
    group.add_argument("--kafka-ssl-certfile", metavar="PEM", help="default $KAFKA_SSL_CERTFILE")
    group.add_argument("--kafka-ssl-keyfile", metavar="PEM", help="default $KAFKA_SSL_KEYFILE")


def from_args(args: argparse.Namespace, environ=None) -> KafkaSecurity:
    """The environment's settings with the flags of ``add_arguments`` applied."""
    return KafkaSecurity.from_env(
        environ, security_protocol=args.kafka_security_protocol,
        sasl_mechanism=args.kafka_sasl_mechanism, username=args.kafka_sasl_username,
        password_file=args.kafka_sasl_password_file, ssl_cafile=args.kafka_ssl_cafile,
        ssl_certfile=args.kafka_ssl_certfile, ssl_keyfile=args.kafka_ssl_keyfile)


# --------------------------------------------------------------------------- preflight


class _Failures(logging.Filter):
    """Collects the connection errors kafka-python logs (and otherwise only retries) from
    the IO thread of one client, and keeps those records out of the logs (the preflight's
    own error sums them up) unless the ``kafka`` loggers are set to DEBUG. A filter on
    each ``kafka.*`` logger, since a logger's filters see only its own records.

    ``login_drops`` counts connections the broker closed during SASL authentication:
    its API versions were read (so it speaks Kafka on this protocol) and the connection
    was lost before it was ready. A broker closes the connection shortly after it
    rejects a login; when the error response and the close arrive in the same read,
    kafka-python 3.0 reports only the close (``kafka/net/transport.py`` drops the data
    read with an EOF), so the rejection is told by the drop."""

    def __init__(self, thread_name):
        super().__init__()
        self._thread = thread_name
        self._loggers = []
        self._previous_level = None
        self.errors = []
        self.login_drops = 0

    def __enter__(self):
        kafka_log = logging.getLogger("kafka")
        self._previous_level = kafka_log.level
        self._shown_level = kafka_log.getEffectiveLevel()
        self._verbose = kafka_log.isEnabledFor(logging.DEBUG)
        if kafka_log.getEffectiveLevel() > logging.WARNING:  # the retries are warnings
            kafka_log.setLevel(logging.WARNING)
        self._loggers = [logging.getLogger(n) for n in ("kafka", *sorted(
            n for n in logging.root.manager.loggerDict if n.startswith("kafka.")))]
        for logger in self._loggers:
            logger.addFilter(self)
        return self

    def __exit__(self, *exc_info):
        for logger in self._loggers:
            logger.removeFilter(self)
        logging.getLogger("kafka").setLevel(self._previous_level)

    def filter(self, record):
        if record.threadName != self._thread:  # other clients: as without the preflight
            return record.levelno >= self._shown_level
        self._collect(record)
        return self._verbose

    def _collect(self, record):
        args = record.args if isinstance(record.args, tuple) else ()
        errors = [a for a in args if isinstance(a, BaseException)]
        self.errors += errors
        from kafka.errors import KafkaConnectionError
        closed = any(isinstance(e, KafkaConnectionError) for e in errors)  # not a timeout
        for conn in args:
            init = getattr(conn, "_init_future", None)
            if (closed and getattr(conn, "sasl_enabled", False)
                    and getattr(conn, "broker_version_data", None) is not None
                    and init is not None and init.failed()):
                self.login_drops += 1


def _rejected(errors):
    from kafka import errors as kafka_errors
    auth = (kafka_errors.SaslAuthenticationFailedError, kafka_errors.UnsupportedSaslMechanismError,
            kafka_errors.AuthorizationError, kafka_errors.IllegalSaslStateError)
    return next((e for e in errors if isinstance(e, auth)), None)


def check_connection(bootstrap_servers: str, security: KafkaSecurity, *,
                     timeout_s: float = 10.0) -> None:
    """Connect, log in and fetch the cluster's metadata once, or raise ``KafkaPreflightError``.

    Rejected credentials (or a mechanism the broker does not enable) fail at the
    first attempt, in about 2 s; unreachable brokers after ``timeout_s``
    (default 10). The message names the servers, protocol, mechanism and user.
    """
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError, KafkaTimeoutError
    client_id = f"entitystream-preflight-{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + timeout_s
    attempt_s = 2.0
    with _Failures(f"kafka-io-{client_id}") as failures:
        while True:
            left = deadline - time.monotonic()
            try:
                _list_topics(KafkaAdminClient, bootstrap_servers, security, client_id,
                             max(0.5, min(attempt_s, left)))
                return
            except (KafkaError, OSError) as exc:
                failures.errors.append(exc)
            rejected = _rejected(failures.errors)
            if rejected is not None or failures.login_drops:
                why = (_scrub(rejected, security) if rejected is not None else
                       "the broker closed the connection during SASL authentication")
                hint = (f"Check KAFKA_SASL_USERNAME and the password (KAFKA_SASL_PASSWORD or "
                        f"KAFKA_SASL_PASSWORD_FILE), and that the user exists on the broker for "
                        f"{security.sasl_mechanism}" if security.sasl else
                        "Check the client certificate and the broker's ACLs")
                msg = f"Kafka at {bootstrap_servers} rejected the login ({security}): {why}. {hint}"
                raise KafkaPreflightError(msg)
            if time.monotonic() >= deadline:
                causes = [e for e in failures.errors if not isinstance(e, KafkaTimeoutError)]
                last = _scrub((causes or failures.errors)[-1], security)
                msg = (f"cannot connect to Kafka at {bootstrap_servers} ({security}) within "
                       f"{timeout_s:.0f} s (last error: {last}). Check --bootstrap-servers / "
                       "KAFKA_BOOTSTRAP_SERVERS, that the brokers run, and that "
                       "KAFKA_SECURITY_PROTOCOL matches their listener")
                raise KafkaPreflightError(msg)
            attempt_s *= 2


def _list_topics(admin_class, bootstrap_servers, security, client_id, timeout_s):
    clients = []

    def make_client(**config):  # kept, so that a client whose bootstrap failed is closed
        clients.append(admin_class.DEFAULT_CONFIG["kafka_client"](**config))
        return clients[-1]

    config = dict(bootstrap_servers=bootstrap_servers, client_id=client_id,
                  request_timeout_ms=int(timeout_s * 1000), **security.client_config())
    if "kafka_client" in admin_class.DEFAULT_CONFIG:  # kafka-python >= 3
        config.update(bootstrap_timeout_ms=int(timeout_s * 1000), kafka_client=make_client)
    try:
        admin = admin_class(**config)
    except BaseException:
        for client in clients:
            client.close()
        raise
    try:
        admin.list_topics()
    finally:
        admin.close()


def _scrub(error, security):
    """``Type: message`` of a client error, the password replaced should it ever appear."""
    name = type(error).__name__
    # kafka-python's broker errors read "[Error 58] Name: Name: message": keep the message.
    text = str(error.args[0]) if error.args else str(error)
    while text.startswith(f"{name}: "):
        text = text[len(name) + 2:]
    text = f"{name}: {text}" if text else name
    return text.replace(security.password, "***") if security.password else text
