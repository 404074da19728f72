"""The studio's C2PA signing credential: an offline root CA and an Ed25519 document-signing leaf.

C2PA validators (c2pa-rs) only accept a signing certificate that looks like a real
document-signing certificate: not a CA, ``digitalSignature`` key usage marked critical, the
``documentSigning`` extended key usage and subject/authority key identifiers. A self-signed
leaf is rejected, so the studio makes a tiny two-level chain of its own: a P-256 root it
keeps as its trust anchor, a leaf that signs manifests and, under the same root, a timestamp
authority certificate (critical ``id-kp-timeStamping``, RFC 3161) for the studio's own offline
TSA (``watermark.tsa``). Every claim signature is timestamped, so a manifest is judged at its
signing time and stays valid after the leaf expires. The root's private key is not kept.

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
_TSA_CHAIN_FILE, _TSA_KEY_FILE = "tsa-chain.pem", "tsa-key.pem"


@dataclass(frozen=True, kw_only=True)
class StudioPki:
    """A freshly made studio PKI (PEM bytes): root, signing chain + key, TSA chain + key."""

    ca_pem: bytes
    chain_pem: bytes
    key_pem: bytes
    tsa_chain_pem: bytes
    tsa_key_pem: bytes


@dataclass(frozen=True, kw_only=True)
class StudioSigner:
    """A C2PA signing credential: leaf + CA chain, the leaf's private key, an optional anchor.

    ``algorithm`` is the C2PA name of the signature algorithm (``"ed25519"`` or ``"es256"``).
    ``trust_anchor_pem`` is the root certificate a reader should trust for this signer's
    manifests (the studio's own CA), or None for a user-supplied chain without one.
    ``tsa_chain_pem``/``tsa_key_pem`` are the studio's timestamp authority (TSA certificate
    first, then the root); None means signatures carry no timestamp (a folder made before
    the studio had a TSA, or a user-supplied chain without one).
    """

    chain_pem: bytes
    key_pem: bytes
    algorithm: str
    trust_anchor_pem: str | None = None
    tsa_chain_pem: bytes | None = None
    tsa_key_pem: bytes | None = None

    @classmethod
    def load_or_create(cls, directory: Path, *, organization: str = "Avatar Studio") -> StudioSigner:
        """Load the studio's credential files from ``directory``, creating them on first use.

        A folder made before the studio had a timestamp authority (no ``tsa-*.pem``) keeps
        working without timestamps: its root key was never kept, so no TSA can be added
        under it (move the folder aside to get a new root with a TSA).
        """
        paths = [directory / name for name in (_CA_FILE, _CHAIN_FILE, _KEY_FILE)]
        if not all(path.exists() for path in paths):
            _write_new_pki(directory, organization=organization)
        tsa_paths = (directory / _TSA_CHAIN_FILE, directory / _TSA_KEY_FILE)
        return cls.from_files(
            directory / _CHAIN_FILE,
            directory / _KEY_FILE,
            trust_anchor_pem=directory / _CA_FILE,
            tsa=tsa_paths if all(path.exists() for path in tsa_paths) else None,
        )

    @classmethod
    def from_files(
        cls,
        chain_pem: Path,
        key_pem: Path,
        trust_anchor_pem: Path | None = None,
        *,
        tsa: tuple[Path, Path] | None = None,
    ) -> StudioSigner:
        """A signer from a user-supplied PEM chain (leaf first) and PKCS#8 private key.

        ``tsa`` is an optional ``(tsa_chain_pem, tsa_key_pem)`` pair of files for timestamps.
        """
        try:
            chain = chain_pem.read_bytes()
            key = key_pem.read_bytes()
            anchor = trust_anchor_pem.read_text() if trust_anchor_pem is not None else None
            tsa_pem = (tsa[0].read_bytes(), tsa[1].read_bytes()) if tsa is not None else (None, None)
        except OSError as exc:
            raise SigningCredentialInvalid("the signing certificate or key file cannot be read") from exc
        return cls.from_pem(chain, key, trust_anchor_pem=anchor, tsa_chain_pem=tsa_pem[0], tsa_key_pem=tsa_pem[1])

    @classmethod
    def from_pki(cls, pki: StudioPki) -> StudioSigner:
        """A signer (with its timestamp authority) from a PKI made by ``create_pki``."""
        return cls.from_pem(
            pki.chain_pem,
            pki.key_pem,
            trust_anchor_pem=pki.ca_pem.decode(),
            tsa_chain_pem=pki.tsa_chain_pem,
            tsa_key_pem=pki.tsa_key_pem,
        )

    @classmethod
    def from_pem(
        cls,
        chain_pem: bytes,
        key_pem: bytes,
        *,
        trust_anchor_pem: str | None = None,
        tsa_chain_pem: bytes | None = None,
        tsa_key_pem: bytes | None = None,
    ) -> StudioSigner:
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
        if (tsa_chain_pem is None) != (tsa_key_pem is None):
            raise SigningCredentialInvalid("the timestamp authority needs both its certificate chain and its key")
        if tsa_chain_pem is not None and tsa_key_pem is not None:
            from watermark.tsa import TimestampAuthority

            TimestampAuthority.from_pem(tsa_chain_pem, tsa_key_pem)  # checks the EKU and the key pair
        return cls(
            chain_pem=chain_pem,
            key_pem=key_pem,
            algorithm=_algorithm_of(key),
            trust_anchor_pem=trust_anchor_pem,
            tsa_chain_pem=tsa_chain_pem,
            tsa_key_pem=tsa_key_pem,
        )

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
    pki = create_pki(organization=organization, now=now)
    return pki.ca_pem, pki.chain_pem, pki.key_pem


def create_pki(
    *,
    organization: str = "Avatar Studio",
    now: dt.datetime | None = None,
    ca_lifetime: dt.timedelta | None = None,
    leaf_lifetime: dt.timedelta | None = None,
    tsa_lifetime: dt.timedelta | None = None,
) -> StudioPki:
    """A new root CA with an Ed25519 signing leaf and a P-256 timestamp authority under it.

    The lifetimes (root ten years, leaf and TSA certificate five years by default) count
    from ``now``; tests shorten them to watch expiry. The root's private key is discarded.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{organization} C2PA Root CA", organization)
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now, lifetime=ca_lifetime or dt.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ed25519.Ed25519PrivateKey.generate()
    leaf_cert = _issue(
        ca_key, ca_name, _name(f"{organization} Content Credentials", organization), leaf_key.public_key(), now,
        lifetime=leaf_lifetime or dt.timedelta(days=_LEAF_DAYS),
        usage=x509.ExtendedKeyUsage([_DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION]), usage_critical=False,
    )
    tsa_key = ec.generate_private_key(ec.SECP256R1())
    # RFC 3161 section 2.3: the TSA certificate has exactly one extended key usage, timeStamping, critical.
    tsa_cert = _issue(
        ca_key, ca_name, _name(f"{organization} Timestamp Authority", organization), tsa_key.public_key(), now,
        lifetime=tsa_lifetime or dt.timedelta(days=_LEAF_DAYS),
        usage=x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), usage_critical=True,
    )
    pem, pkcs8, none = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ca_pem = ca_cert.public_bytes(pem)
    return StudioPki(
        ca_pem=ca_pem,
        chain_pem=leaf_cert.public_bytes(pem) + ca_pem,
        key_pem=leaf_key.private_bytes(pem, pkcs8, none),
        tsa_chain_pem=tsa_cert.public_bytes(pem) + ca_pem,
        tsa_key_pem=tsa_key.private_bytes(pem, pkcs8, none),
    )


def _issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    subject: x509.Name,
    public_key: object,
    now: dt.datetime,
    *,
    lifetime: dt.timedelta,
    usage: x509.ExtendedKeyUsage,
    usage_critical: bool,
) -> x509.Certificate:
    """An end-entity certificate under the root: not a CA, digitalSignature (critical), SKI/AKI."""
    return (
        _builder(subject, ca_name, public_key, now, lifetime=lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(usage, critical=usage_critical)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)  # type: ignore[arg-type]
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _write_new_pki(directory: Path, *, organization: str) -> None:
    pki = create_pki(organization=organization)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # the keys' folder: owner only
    for name, key_pem in ((_KEY_FILE, pki.key_pem), (_TSA_KEY_FILE, pki.tsa_key_pem)):
        # Create each key file with 0600 from the start, so it is never readable by others.
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key_pem)
        os.chmod(directory / name, 0o600)
    (directory / _TSA_CHAIN_FILE).write_bytes(pki.tsa_chain_pem)
    (directory / _CHAIN_FILE).write_bytes(pki.chain_pem)
    (directory / _CA_FILE).write_bytes(pki.ca_pem)


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: object, now: dt.datetime, *, lifetime: dt.timedelta
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
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
