"""Security settings reach every client stack the same way, and secrets stay out of sight."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.dev.certificates import CertificateAuthority
from streams.engine.kafka import KafkaConfig
from streams.settings import SettingsError, load_settings


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority.create(folder, "ca")
    client = ca.issue(folder, "client", "worker", key_password="key-secret")
    return {"ca": ca.certificate, "cert": client.certificate, "key": client.key}


def test_sasl_ssl_settings_reach_librdkafka_aiokafka_and_faust(
    pki: dict[str, Path], tmp_path: Path
) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("s3cret-from-file\n")
    settings = load_settings(
        kafka_bootstrap_servers="b1:9093,b2:9093", kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="omnihooks-worker",
        kafka_sasl_password_file=password_file, kafka_ssl_ca_location=pki["ca"],
    )  # fmt: skip
    config = KafkaConfig.of(settings)
    assert config.sasl_password == "s3cret-from-file"  # the file wins, trimmed
    rd = config.librdkafka()
    assert rd["security.protocol"] == "sasl_ssl" and rd["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (rd["sasl.username"], rd["sasl.password"]) == ("omnihooks-worker", "s3cret-from-file")
    assert rd["ssl.ca.location"] == str(pki["ca"])
    assert rd["ssl.endpoint.identification.algorithm"] == "https"
    aio = config.aiokafka()
    assert aio["security_protocol"] == "SASL_SSL" and aio["sasl_mechanism"] == "SCRAM-SHA-512"
    assert aio["sasl_plain_password"] == "s3cret-from-file"
    assert aio["ssl_context"].check_hostname and aio["bootstrap_servers"] == ["b1:9093", "b2:9093"]
    credentials = config.faust_credentials()
    assert credentials.mechanism.value == "SCRAM-SHA-512" and credentials.ssl_context is not None
    assert config.principal == "User:omnihooks-worker"
    # Secrets stay out of reprs and of the settings' own text
    assert "s3cret" not in repr(config) and "s3cret" not in repr(settings)


def test_mutual_tls_with_an_encrypted_key(pki: dict[str, Path]) -> None:
    config = KafkaConfig.of(load_settings(
        kafka_security_protocol="SSL", kafka_ssl_ca_location=pki["ca"],
        kafka_ssl_certificate_location=pki["cert"], kafka_ssl_key_location=pki["key"],
        kafka_ssl_key_password="key-secret", kafka_ssl_endpoint_identification_algorithm="none",
    ))  # fmt: skip
    rd = config.librdkafka()
    assert rd["security.protocol"] == "ssl" and "sasl.mechanism" not in rd
    assert rd["ssl.key.password"] == "key-secret"
    assert rd["ssl.endpoint.identification.algorithm"] == "none"
    context = config.ssl_context()
    assert context is not None and not context.check_hostname  # the key was loaded
    assert isinstance(config.faust_credentials(), type(context))  # a bare context: SSL
    assert "key-secret" not in repr(config)


def test_plaintext_is_the_default_and_adds_nothing() -> None:
    config = KafkaConfig.of(load_settings())
    assert config.librdkafka()["security.protocol"] == "plaintext"
    assert config.ssl_context() is None and config.faust_credentials() is None
    assert config.principal == "User:ANONYMOUS"


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "KAFKA_SASL_USERNAME"),
        ({"kafka_security_protocol": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
        ({"kafka_ssl_ca_location": "/nowhere/ca.pem"}, "KAFKA_SSL_CA_LOCATION"),
        ({"kafka_sasl_password_file": "/nowhere/password"}, "KAFKA_SASL_PASSWORD_FILE"),
        ({"kafka_sasl_mechanism": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
    ],
)
def test_a_bad_security_setting_names_its_variable(overrides: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(**overrides)


def test_a_certificate_needs_its_key(pki: dict[str, Path]) -> None:
    with pytest.raises(
        SettingsError, match="KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION"
    ):
        load_settings(kafka_security_protocol="SSL", kafka_ssl_certificate_location=pki["cert"])


def test_the_environment_names_follow_librdkafka(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "key")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "secret")
    config = KafkaConfig.of(load_settings())
    assert (config.security_protocol, config.sasl_username, config.sasl_password) == (
        "SASL_PLAINTEXT", "key", "secret",
    )  # fmt: skip
