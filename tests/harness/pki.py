"""A throwaway certificate authority for TLS tests, made with ``cryptography``.

:class:`TestCA` issues a broker certificate for the loopback address and client
certificates whose subject CN is the MQTT identity (the gateway id, or a service name
such as ``vitalgate-ingest``), as the shipped Mosquitto configuration expects with
``use_identity_as_username``. It can issue an already-expired certificate, revoke one
and write the CRL. Keys are EC P-256: fast to make, and what a small gateway would use.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY: timedelta = timedelta(days=2)
"""Long enough for any test run; a throwaway CA never needs more."""
BACKDATE: timedelta = timedelta(minutes=5)
"""``not_valid_before`` lies this far back, so a clock a little behind still accepts it."""


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate and its key, as PEM files."""

    common_name: str
    cert_file: Path
    key_file: Path
    serial: int


@dataclass
class TestCA:
    """A CA whose files live in ``directory``.

    Attributes:
        directory: where the CA's and the issued certificates' files are written.
        name: the CA's common name (also the file-name prefix).
    """

    __test__ = False  # not a pytest test class

    directory: Path
    name: str = "vitalgate-test-ca"
    revoked: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        self.cert_file = self.directory / f"{self.name}.crt"
        self.cert_file.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        self.crl_file = self.directory / f"{self.name}.crl"
        self.write_crl()

    def issue_server(self, name: str = "broker", *, host: str = "127.0.0.1") -> IssuedCertificate:
        """A server certificate for ``host`` (an IP address SAN, and ``localhost``)."""
        names: list[x509.GeneralName] = [x509.DNSName("localhost")]
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
        return self._issue(name, names, ExtendedKeyUsageOID.SERVER_AUTH)

    def issue_client(
        self, common_name: str, *, expired: bool = False, file_name: str | None = None
    ) -> IssuedCertificate:
        """A client certificate whose subject CN is ``common_name``.

        Args:
            common_name: the MQTT identity (gateway id or service name).
            expired: make it one that expired an hour ago.
            file_name: file-name prefix (default ``common_name``).
        """
        return self._issue(
            file_name or common_name,
            [],
            ExtendedKeyUsageOID.CLIENT_AUTH,
            common_name=common_name,
            expired=expired,
        )

    def revoke(self, certificate: IssuedCertificate) -> None:
        """Add ``certificate`` to the CRL and rewrite :attr:`crl_file`."""
        self.revoked.append(certificate.serial)
        self.write_crl()

    def write_crl(self) -> None:
        """Write the CRL (PEM) listing every revoked serial."""
        now = datetime.now(UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._cert.subject)
            .last_update(now - BACKDATE)
            .next_update(now + VALIDITY)
        )
        for serial in self.revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(now - BACKDATE)
                .build()
            )
        crl = builder.sign(self._key, hashes.SHA256())
        self.crl_file.write_bytes(crl.public_bytes(serialization.Encoding.PEM))

    def _issue(
        self,
        file_name: str,
        alternative_names: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
        *,
        common_name: str | None = None,
        expired: bool = False,
    ) -> IssuedCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        if expired:
            not_before, not_after = now - 2 * VALIDITY, now - timedelta(hours=1)
        else:
            not_before, not_after = now - BACKDATE, now + VALIDITY
        serial = x509.random_serial_number()
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name or file_name)])
            )
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if alternative_names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(alternative_names), critical=False
            )
        cert = builder.sign(self._key, hashes.SHA256())
        cert_file = self.directory / f"{file_name}.crt"
        key_file = self.directory / f"{file_name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_file.chmod(0o600)
        return IssuedCertificate(common_name or file_name, cert_file, key_file, serial)
