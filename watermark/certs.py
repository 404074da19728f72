"""The studio's C2PA signing credential: an offline root CA and an Ed25519 document-signing leaf.

C2PA validators (c2pa-rs) only accept a signing certificate that looks like a real
document-signing certificate: not a CA, ``digitalSignature`` key usage marked critical, the
``documentSigning`` extended key usage and subject/authority key identifiers. A self-signed
leaf is rejected, so the studio makes a tiny two-level chain of its own: a P-256 root it
keeps as its trust anchor, and a leaf that signs manifests. No timestamp authority is used
(the studio runs offline), so a manifest is judged against the leaf's validity period.

Example::

    signer = StudioSigner.load_or_create(config.keys_dir / "c2pa")
    signer.trust_anchor_pem   # give this to read_manifest() to get "trusted"
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from watermark.errors import SigningCredentialInvalid

_DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
_CA_DAYS = 3650
_LEAF_DAYS = 1825
_CA_FILE, _CHAIN_FILE, _KEY_FILE = "ca.pem", "chain.pem", "key.pem"



@dataclass(frozen=True, kw_only=True)
class StudioSigner:
    """A C2PA signing credential: leaf + CA chain, the leaf's private key, an optional anchor.

    ``algorithm`` is the C2PA name of the signature algorithm (``"ed25519"`` or ``"es256"``).
    ``trust_anchor_pem`` is the root certificate a reader should trust for this signer's
    manifests (the studio's own CA), or None for a user-supplied chain without one.
    """

    chain_pem: bytes
    key_pem: bytes
    algorithm: str
    trust_anchor_pem: str | None = None

    @classmethod
    def load_or_create(cls, directory: Path, *, organization: str = "Avatar Studio") -> StudioSigner:
        """Load ``ca.pem``/``chain.pem``/``key.pem`` from ``directory``, creating them on first use."""
        paths = [directory / name for name in (_CA_FILE, _CHAIN_FILE, _KEY_FILE)]
        if not all(path.exists() for path in paths):
            _write_new_chain(directory, organization=organization)
        return cls.from_files(directory / _CHAIN_FILE, directory / _KEY_FILE, trust_anchor_pem=directory / _CA_FILE)

    @classmethod
    def from_files(cls, chain_pem: Path, key_pem: Path, trust_anchor_pem: Path | None = None) -> StudioSigner:
        """A signer from a user-supplied PEM chain (leaf first) and PKCS#8 private key."""
        try:
            chain = chain_pem.read_bytes()
            key = key_pem.read_bytes()
            anchor = trust_anchor_pem.read_text() if trust_anchor_pem is not None else None
        except OSError as exc:
            raise SigningCredentialInvalid("the signing certificate or key file cannot be read") from exc
        return cls.from_pem(chain, key, trust_anchor_pem=anchor)

    @classmethod
    def from_pem(cls, chain_pem: bytes, key_pem: bytes, *, trust_anchor_pem: str | None = None) -> StudioSigner:
        """A signer from PEM bytes; checks that the key belongs to the chain's first certificate."""
        try:
            certificates = x509.load_pem_x509_certificates(chain_pem)
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise SigningCredentialInvalid("the signing certificate chain or key is not valid PEM") from exc
        leaf_public = certificates[0].public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        key_public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if leaf_public != key_public:
            raise SigningCredentialInvalid("the private key does not belong to the signing certificate")
        return cls(chain_pem=chain_pem, key_pem=key_pem, algorithm=_algorithm_of(key), trust_anchor_pem=trust_anchor_pem)

    @property
    def subject_common_name(self) -> str | None:
        """The leaf certificate's common name (what a reader reports as the signer)."""
        leaf = x509.load_pem_x509_certificates(self.chain_pem)[0]
        names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if names else None


def create_chain(
    *, organization: str = "Avatar Studio", now: dt.datetime | None = None
) -> tuple[bytes, bytes, bytes]:
    """A new root CA and Ed25519 leaf: returns ``(ca_pem, chain_pem, leaf_key_pem)``.

    The chain PEM is leaf first, then the CA, which is the order c2pa-rs expects.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{organization} C2PA Root CA", organization)
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now, days=_CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ed25519.Ed25519PrivateKey.generate()
    leaf_cert = (
        _builder(_name(f"{organization} Content Credentials", organization), ca_name, leaf_key.public_key(), now,
                 days=_LEAF_DAYS)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([_DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_pem = ca_cert.public_bytes(pem)
    key_pem = leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca_pem, leaf_cert.public_bytes(pem) + ca_pem, key_pem


def _write_new_chain(directory: Path, *, organization: str) -> None:
    ca_pem, chain_pem, key_pem = create_chain(organization=organization)
    directory.mkdir(parents=True, exist_ok=True)
    key_path = directory / _KEY_FILE
    # Create the key file with 0600 from the start, so it is never readable by others.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_pem)
    os.chmod(key_path, 0o600)
    (directory / _CHAIN_FILE).write_bytes(chain_pem)
    (directory / _CA_FILE).write_bytes(ca_pem)


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: object, now: dt.datetime, *, days: int
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _algorithm_of(key: object) -> str:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return "es256"
    raise SigningCredentialInvalid("the signing key must be Ed25519 or ECDSA P-256")
