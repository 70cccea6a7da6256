"""KafkaSecurity: settings from the environment and flags, validation, client
config, and that the password is never shown (pure logic; the broker test is
tests/integration/test_kafka_security.py)."""
import argparse
import logging
import pickle

import pytest
from kafka.errors import SaslAuthenticationFailedError

from connectors.kafka_security import (KafkaSecurity, _scrub, add_arguments, from_args)
from pipeline import settings as settings_module

PASSWORD = "s3cret-Pa55"
SASL_ENV = {"KAFKA_SECURITY_PROTOCOL": "sasl_plaintext", "KAFKA_SASL_MECHANISM": "scram-sha-256",
            "KAFKA_SASL_USERNAME": "alice", "KAFKA_SASL_PASSWORD": PASSWORD}


@pytest.fixture(autouse=True)
def no_security_environment(monkeypatch):
    for name in ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME",
                 "KAFKA_SASL_PASSWORD", "KAFKA_SASL_PASSWORD_FILE", "KAFKA_SSL_CAFILE",
                 "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE", "KAFKA_SSL_CHECK_HOSTNAME"):
        monkeypatch.delenv(name, raising=False)


def sasl(**overrides):
    fields = dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                  username="alice", password=PASSWORD)
    return KafkaSecurity(**{**fields, **overrides})


def parse(argv, environ):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return from_args(parser.parse_args(argv), environ)


def test_default_is_plaintext_and_adds_nothing_to_clients():
    security = KafkaSecurity.from_env({})
    assert security == KafkaSecurity()
    assert security.security_protocol == "PLAINTEXT"
    assert security.client_config() == {}


def test_constructor_is_keyword_only():
    with pytest.raises(TypeError):
        KafkaSecurity("SASL_PLAINTEXT")


def test_sasl_from_env_gives_kafka_python_settings():
    config = KafkaSecurity.from_env(SASL_ENV).client_config()
    assert config == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
                      "sasl_plain_username": "alice", "sasl_plain_password": PASSWORD}


def test_sasl_ssl_passes_the_tls_files(tmp_path):
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "cert.pem", "key.pem"))
    for f in (ca, cert, key):
        f.write_text("PEM")
    env = dict(SASL_ENV, KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SSL_CAFILE=str(ca),
               KAFKA_SSL_CERTFILE=str(cert), KAFKA_SSL_KEYFILE=str(key),
               KAFKA_SSL_CHECK_HOSTNAME="false")
    config = KafkaSecurity.from_env(env).client_config()
    assert config == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256",
                      "sasl_plain_username": "alice", "sasl_plain_password": PASSWORD,
                      "ssl_cafile": str(ca), "ssl_certfile": str(cert), "ssl_keyfile": str(key),
                      "ssl_check_hostname": False}


def test_ssl_without_files_checks_hostnames_with_the_system_cas():
    assert KafkaSecurity(security_protocol="SSL").client_config() == {
        "security_protocol": "SSL", "ssl_check_hostname": True}


def test_password_file_drops_one_trailing_newline(tmp_path):
    path = tmp_path / "password"
    path.write_text(PASSWORD + "\n")
    env = {k: v for k, v in SASL_ENV.items() if k != "KAFKA_SASL_PASSWORD"}
    security = KafkaSecurity.from_env(dict(env, KAFKA_SASL_PASSWORD_FILE=str(path)))
    assert security.password == PASSWORD


def test_password_variable_and_file_together_are_ambiguous(tmp_path):
    path = tmp_path / "password"
    path.write_text("other")
    with pytest.raises(ValueError, match="both KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE"):
        KafkaSecurity.from_env(dict(SASL_ENV, KAFKA_SASL_PASSWORD_FILE=str(path)))


def test_unreadable_password_file_names_the_path(tmp_path):
    missing = tmp_path / "nope"
    env = {k: v for k, v in SASL_ENV.items() if k != "KAFKA_SASL_PASSWORD"}
    with pytest.raises(ValueError, match=f"cannot read the Kafka SASL password file '{missing}'"):
        KafkaSecurity.from_env(dict(env, KAFKA_SASL_PASSWORD_FILE=str(missing)))


def test_flags_override_the_environment(tmp_path):
    path = tmp_path / "password"
    path.write_text("from-file\n")
    security = parse(["--kafka-sasl-mechanism", "plain", "--kafka-sasl-username", "bob",
                      "--kafka-sasl-password-file", str(path)], SASL_ENV)
    assert (security.security_protocol, security.sasl_mechanism, security.username,
            security.password) == ("SASL_PLAINTEXT", "PLAIN", "bob", "from-file")


def test_no_flag_takes_a_password_value():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = [a for action in parser._actions for a in action.option_strings]
    assert "--kafka-sasl-password-file" in flags
    assert not [f for f in flags if "password" in f and not f.endswith("-file")]


@pytest.mark.parametrize("fields, message", [
    (dict(security_protocol="SASL"), "security_protocol 'SASL' is not one of PLAINTEXT, SSL, "
                                     "SASL_PLAINTEXT, SASL_SSL; set KAFKA_SECURITY_PROTOCOL"),
    (dict(sasl_mechanism=None), "SASL_PLAINTEXT needs a SASL mechanism: set KAFKA_SASL_MECHANISM"),
    (dict(sasl_mechanism="GSSAPI"), "cannot use SASL mechanism 'GSSAPI': set KAFKA_SASL_MECHANISM "
                                    "(or --kafka-sasl-mechanism) to one of PLAIN, SCRAM-SHA-256, "
                                    "SCRAM-SHA-512"),
    (dict(username=None), "needs a user name: set KAFKA_SASL_USERNAME"),
    (dict(password=""), "user 'alice' has no password: set KAFKA_SASL_PASSWORD or "
                        "KAFKA_SASL_PASSWORD_FILE"),
    (dict(security_protocol="PLAINTEXT"), "sasl_mechanism, username, password given but "
                                          "security_protocol is PLAINTEXT"),
    (dict(ssl_cafile="/etc/hosts"), "ssl_cafile '/etc/hosts' given but security_protocol is "
                                    "SASL_PLAINTEXT, which does not use TLS"),
    (dict(security_protocol="SASL_SSL", ssl_cafile="/no/such/ca.pem"),
     "ssl_cafile '/no/such/ca.pem' is not a file: set KAFKA_SSL_CAFILE"),
    (dict(security_protocol="SASL_SSL", ssl_keyfile="/etc/hosts"),
     "ssl_keyfile '/etc/hosts' given without ssl_certfile"),
])
def test_invalid_settings_name_the_value_and_the_fix(fields, message):
    with pytest.raises(ValueError) as raised:
        sasl(**fields)
    assert message in str(raised.value)
    assert PASSWORD not in str(raised.value)


def test_bad_boolean_names_the_variable():
    with pytest.raises(ValueError, match="KAFKA_SSL_CHECK_HOSTNAME='maybe' is not a boolean"):
        KafkaSecurity.from_env({"KAFKA_SSL_CHECK_HOSTNAME": "maybe"})


def test_password_never_shown():
    security = sasl()
    config = security.client_config()
    shown = [repr(security), str(security), repr(config), str(config), str(list(config.items())),
             repr(settings_module.Settings(kafka_security=security))]
    assert all(PASSWORD not in text for text in shown)
    assert "password='***'" in repr(security)
    assert str(security) == "SASL_PLAINTEXT SCRAM-SHA-512 as user 'alice'"


def test_client_config_keeps_the_password_through_pickling():
    config = pickle.loads(pickle.dumps(sasl().client_config()))
    assert config["sasl_plain_password"] == PASSWORD
    assert repr(config["sasl_plain_password"]) == "'***'"


def test_client_errors_are_scrubbed_of_the_password():
    error = SaslAuthenticationFailedError(f"SaslAuthenticationFailedError: bad {PASSWORD}")
    assert _scrub(error, sasl()) == "SaslAuthenticationFailedError: bad ***"


def test_settings_take_security_from_environment_and_flags(monkeypatch):
    for name, value in SASL_ENV.items():
        monkeypatch.setenv(name, value)
    assert settings_module.Settings().kafka_security == KafkaSecurity.from_env(SASL_ENV)
    parser = argparse.ArgumentParser()
    settings_module.add_arguments(parser)
    args = parser.parse_args(["--kafka-sasl-mechanism", "SCRAM-SHA-512"])
    got = settings_module.from_args(args).kafka_security
    assert (got.sasl_mechanism, got.username, got.password) == ("SCRAM-SHA-512", "alice", PASSWORD)


def test_metrics_endpoint_defaults_to_loopback(monkeypatch):
    monkeypatch.delenv("ENTITYSTREAM_METRICS_PORT", raising=False)
    parser = argparse.ArgumentParser()
    settings_module.add_arguments(parser)
    assert settings_module.from_args(parser.parse_args([])).metrics_host == "127.0.0.1"
    assert settings_module.Settings().metrics_host == "127.0.0.1"


def test_kafka_python_debug_logs_of_requests_are_redacted(caplog):
    sasl().client_config()  # registers the password with the kafka loggers' filter
    caplog.set_level(logging.DEBUG, logger="kafka")
    auth_bytes = b"alice\x00alice\x00" + PASSWORD.encode()
    logging.getLogger("kafka.net.connection").debug("Request %d: %s", 3, auth_bytes)
    logging.getLogger("kafka.protocol.parser").debug("Send: %r", b"\x00\x01" + auth_bytes)
    # Only the two lines logged here: kafka-python clients of earlier tests may still log.
    assert [r.getMessage() for r in caplog.records if "alice" in r.getMessage()] == [
        "Request 3: b'alice\\x00alice\\x00***'", "Send: b'\\x00\\x01alice\\x00alice\\x00***'"]
