"""How Kafka refused a client, in words an operator can act on: mapped once, here, from
either client stack's errors.

- a refused login (SASL) or certificate (TLS) is `KafkaAccessError` at once: retrying
  cannot fix a wrong password, an unknown CA or a certificate for another host;
- a missing right is `KafkaAccessError` naming the principal, the operation and the
  resource (`not_authorized`), the ACL an administrator has to add.

Messages name the broker and the principal, never a secret.
"""

from __future__ import annotations

import socket
import ssl
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.engine.kafka import KafkaConfig

# librdkafka's codes for a connection the broker or the TLS handshake refused
AUTHENTICATION = -169  # _AUTHENTICATION: SASL login refused, or mechanism not enabled
SSL_HANDSHAKE = -181  # _SSL: the broker's certificate failed verification
TRANSPORT = -195  # _TRANSPORT: among others, a listener that wants a client certificate

# Kafka's authorization error codes, with the resource kind they concern
AUTHORIZATION_CODES = {29: "topic", 30: "group", 31: "cluster", 53: "transactional id"}

# OpenSSL's verify results for a certificate from an unknown CA, and for another host
UNTRUSTED = {2, 18, 19, 20, 21}
WRONG_HOST = {62, 64}


class KafkaAccessError(RuntimeError):
    """Kafka refused this client: its login, its certificate, the broker's certificate, or
    a right it lacks. Retrying does not help; the message says what to change."""


def refusal(config: KafkaConfig, code: int, text: str) -> str | None:
    """What a librdkafka connection error means when it is a refusal; None when it is not
    (a broker down or starting: retrying is right)."""
    broker = config.bootstrap
    if code == AUTHENTICATION:
        return (
            f"Kafka at {broker} refused the login of {config.principal} "
            f"({config.sasl_mechanism}): {_after_colon(text)}. Check KAFKA_SASL_USERNAME "
            "and KAFKA_SASL_PASSWORD"
        )
    if code == SSL_HANDSHAKE:
        return tls_problem(config) or f"TLS with Kafka at {broker} failed: {text}"
    if code == TRANSPORT and "certificate required" in text:
        return (
            f"Kafka at {broker} wants a client certificate: set KAFKA_SSL_CERTIFICATE_LOCATION "
            "and KAFKA_SSL_KEY_LOCATION"
        )
    if code == TRANSPORT and "PLAINTEXT broker listener" in text:
        return f"Kafka at {broker} does not speak TLS on that port: check KAFKA_SECURITY_PROTOCOL"
    return None


def aiokafka_refusal(config: KafkaConfig, error: BaseException) -> str | None:
    """The same for the exception aiokafka raised while connecting."""
    from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError

    if isinstance(error, SaslAuthenticationFailed | UnsupportedSaslMechanismError):
        return refusal(config, AUTHENTICATION, str(error))
    if isinstance(error, ssl.SSLCertVerificationError):
        return _verify_problem(config, error)
    cause = error.__cause__
    if isinstance(cause, ssl.SSLError) and "CERTIFICATE_REQUIRED" in str(cause):
        return refusal(config, TRANSPORT, "certificate required")
    return None


def tls_problem(config: KafkaConfig) -> str | None:
    """Why the broker's certificate is refused, found by a TLS handshake of our own (librdkafka
    says only "certificate verify failed", whatever the reason); None if it passes."""
    context = config.ssl_context()
    if context is None:
        return None
    host, _, port = config.servers[0].rpartition(":")
    try:
        with (
            socket.create_connection((host, int(port)), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return None
    except ssl.SSLCertVerificationError as exc:
        return _verify_problem(config, exc)
    except (OSError, ValueError):
        return None


def _verify_problem(config: KafkaConfig, error: ssl.SSLCertVerificationError) -> str:
    broker = config.bootstrap
    if error.verify_code in WRONG_HOST:
        return (
            f"the certificate of Kafka at {broker} is not for that host "
            f"({error.verify_message}): dial a name the certificate holds"
        )
    if error.verify_code in UNTRUSTED:
        where = config.ssl_ca_location or "the system's trust store"
        return (
            f"the certificate of Kafka at {broker} is not signed by a CA in {where} "
            f"({error.verify_message}): set KAFKA_SSL_CA_LOCATION to the cluster's CA"
        )
    return f"the certificate of Kafka at {broker} was refused: {error.verify_message}"


def not_authorized(config: KafkaConfig, operation: str, kind: str, name: str) -> KafkaAccessError:
    """A right the principal lacks, as the ACL that would grant it."""
    return KafkaAccessError(
        f"{config.principal} is not authorized to {operation} {kind} {name} on Kafka at "
        f"{config.bootstrap}: an ACL is missing (each role's rights: topics/roles.toml)"
    )


def authorization(config: KafkaConfig, error: Any, operation: str, name: str) -> KafkaAccessError:
    """`not_authorized` for a librdkafka error whose code is an authorization failure."""
    kind = AUTHORIZATION_CODES.get(error.code(), "resource")
    return not_authorized(config, operation, kind, name)


def is_authorization(error: Any) -> bool:
    return error is not None and error.code() in AUTHORIZATION_CODES


def _after_colon(text: str) -> str:
    # librdkafka prefixes the broker's reason with its own context
    return text.split("error: ", 1)[-1].split(" (after ", 1)[0]
