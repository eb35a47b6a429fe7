"""A secured broker for the tests (`LocalKafka(secured=True)`, streams/dev/broker_security.py)
and the settings of each role's least-privileged principal on it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from streams.dev.broker_security import ADMIN
from streams.dev.local_kafka import LocalKafka
from streams.engine import kafka
from streams.engine.kafka import KafkaConfig
from streams.ops.acl_admin import grant
from topics.roles import load_roles

SECURED_PORT = 19592  # SASL_SSL; +1 controller, +2 mutual TLS, +3 internal
Mechanism = Literal["scram", "mtls"]


@dataclass(frozen=True)
class SecuredCluster:
    broker: LocalKafka

    @property
    def ca(self) -> Path:
        return self.broker.security.ca.certificate

    def password(self, user: str) -> str:
        return self.broker.security.users()[user]

    def connection(self, user: str, mechanism: Mechanism = "scram") -> dict[str, Any]:
        """Settings overrides for `user`'s principal: SCRAM over TLS (`User:<user>`) or a
        client certificate (`User:CN=<user>`)."""
        if mechanism == "mtls":
            issued = self.broker.security.client_certificate(user)
            return {
                "kafka_bootstrap_servers": self.broker.mtls_bootstrap,
                "kafka_security_protocol": "SSL",
                "kafka_ssl_ca_location": self.ca,
                "kafka_ssl_certificate_location": issued.certificate,
                "kafka_ssl_key_location": issued.key,
            }
        return {
            "kafka_bootstrap_servers": self.broker.bootstrap,
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": user,
            "kafka_sasl_password": self.password(user),
            "kafka_ssl_ca_location": self.ca,
        }

    def admin(self) -> KafkaConfig:
        return KafkaConfig(
            self.broker.bootstrap, "omnihooks-test-admin", "SASL_SSL", "SCRAM-SHA-512", ADMIN,
            self.password(ADMIN), str(self.ca),
        )  # fmt: skip

    @staticmethod
    def principal(role: str, mechanism: Mechanism) -> str:
        return f"User:CN={role}" if mechanism == "mtls" else f"User:{role}"

    def grant_role(self, role: str, mechanism: Mechanism, prefix: str, app_id: str) -> None:
        """The role's rights, for one deployment's prefix and app id, to the principal of that
        name; returns once the authorizer applies them."""
        acls = load_roles()[role].acls(prefix, app_id)
        principal = self.principal(role, mechanism)
        grant(self.admin(), principal, acls)
        wait_for_acls(self.admin(), principal, len(acls))


def wait_for_acls(
    config: KafkaConfig, principal: str, at_least: int, timeout_s: float = 30
) -> None:
    """ACLs reach the authorizer through the metadata log, a moment after they are created."""
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    client = kafka.admin(config)
    wanted = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, principal, None,
                              AclOperation.ANY, AclPermissionType.ANY)  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while len(client.describe_acls(wanted, request_timeout=10).result()) < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"the ACLs of {principal} never showed")
        time.sleep(0.2)
