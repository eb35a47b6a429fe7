"""What makes the development broker a secured one, as production clusters are: a SASL_SSL
listener (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 users made at format time), a listener that
requires a client certificate, and KRaft's StandardAuthorizer with no access unless an ACL
grants it.

- Clients dial `localhost`: the broker's certificate names that host only, so dialling
  127.0.0.1 shows what a certificate for another host does.
- The broker's own listeners (controller, inter-broker) stay plaintext on 127.0.0.1, and
  their anonymous principal is a super user: set-up and health checks use them, never the
  least-privilege clients.
- SCRAM users: `admin` (a super user) and one per role of topics/roles.toml, with random
  passwords kept in `users.json`; a certificate's principal is `User:CN=<name>`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from streams.dev.certificates import CertificateAuthority, Issued
from topics.roles import load_roles

HOST = "localhost"
ADMIN = "admin"


@dataclass(frozen=True)
class BrokerSecurity:
    folder: Path

    @property
    def ca(self) -> CertificateAuthority:
        return CertificateAuthority(self.folder / "ca.crt", self.folder / "ca.key")

    @property
    def keystore(self) -> Path:
        return self.folder / "broker-keystore.pem"

    def create(self) -> None:
        """A CA, the broker's certificate and the users, once per data folder."""
        if self.keystore.exists():
            return
        ca = CertificateAuthority.create(self.folder, "ca")
        broker = ca.issue(self.folder, "broker", HOST, hosts=(HOST,))
        # Kafka's PEM key store: the key and the certificate chain in one file
        self.keystore.write_bytes(broker.key.read_bytes() + broker.certificate.read_bytes())
        self.keystore.chmod(0o600)
        users = {name: secrets.token_urlsafe(18) for name in (ADMIN, *load_roles())}
        users_file = self.folder / "users.json"
        users_file.write_text(json.dumps(users, indent=1))
        users_file.chmod(0o600)

    def users(self) -> dict[str, str]:
        """SCRAM and PLAIN users and their passwords."""
        users: dict[str, str] = json.loads((self.folder / "users.json").read_text())
        return users

    def client_certificate(self, name: str, key_password: str | None = None) -> Issued:
        """A certificate whose principal is `User:CN=<name>`, made on first use."""
        issued = Issued(self.folder / f"client-{name}.crt", self.folder / f"client-{name}.key")
        if key_password is not None or not issued.certificate.exists():
            return self.ca.issue(self.folder, f"client-{name}", name, key_password=key_password)
        return issued

    def listener_config(self, port: int, controller_port: int) -> list[str]:
        """server.properties lines: ports `port` (SASL_SSL), +2 (mutual TLS), +3 (internal)."""
        users = self.users()
        plain_users = " ".join(f'user_{name}="{password}"' for name, password in users.items())
        return [
            f"listeners=SASL_SSL://127.0.0.1:{port},MTLS://127.0.0.1:{port + 2},"
            f"INTERNAL://127.0.0.1:{port + 3},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=SASL_SSL://{HOST}:{port},MTLS://{HOST}:{port + 2},"
            f"INTERNAL://127.0.0.1:{port + 3}",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT,"
            "SASL_SSL:SASL_SSL,MTLS:SSL",
            "inter.broker.listener.name=INTERNAL",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={self.keystore}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.ca.certificate}",
            "listener.name.mtls.ssl.client.auth=required",
            "listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.sasl_ssl.plain.sasl.jaas.config="
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users=User:ANONYMOUS;User:{ADMIN}",
            "allow.everyone.if.no.acl.found=false",
        ]
