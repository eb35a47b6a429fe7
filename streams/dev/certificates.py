"""TLS material for the secured development broker and its clients, made at start with
`cryptography`: a CA, the broker's certificate and a client certificate per principal, all
PEM, the keys unencrypted PKCS#8 (what Kafka's PEM key store reads) unless a password is
given. Development only: the keys sit in the broker's data folder."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 30


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM files."""

    certificate: Path
    key: Path


@dataclass(frozen=True)
class CertificateAuthority:
    certificate: Path
    key: Path

    @classmethod
    def create(cls, folder: Path, name: str) -> CertificateAuthority:
        """A new self-signed CA in `folder` (`<name>.crt`, `<name>.key`)."""
        folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        certificate = (
            _builder(subject, subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        found = cls(folder / f"{name}.crt", folder / f"{name}.key")
        _write(found.certificate, certificate.public_bytes(serialization.Encoding.PEM))
        _write(found.key, _key_pem(key, None))
        return found

    def issue(
        self,
        folder: Path,
        name: str,
        common_name: str,
        hosts: tuple[str, ...] = (),
        key_password: str | None = None,
    ) -> Issued:
        """A certificate for a server (`hosts`: its DNS names and IP addresses) or a client
        (no hosts: its principal is `User:CN=<common_name>`)."""
        ca_key = serialization.load_pem_private_key(self.key.read_bytes(), None)
        ca_certificate = x509.load_pem_x509_certificate(self.certificate.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        usage = [ExtendedKeyUsageOID.SERVER_AUTH if hosts else ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = (
            _builder(subject, ca_certificate.subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        )
        if hosts:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(host) for host in hosts]),
                critical=False,
            )
        certificate = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
        issued = Issued(folder / f"{name}.crt", folder / f"{name}.key")
        _write(issued.certificate, certificate.public_bytes(serialization.Encoding.PEM))
        _write(issued.key, _key_pem(key, key_password))
        return issued


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _key_pem(key: ec.EllipticCurvePrivateKey, password: str | None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)
