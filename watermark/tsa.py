"""The studio's own RFC 3161 timestamp authority, served on loopback while a manifest is signed.

A C2PA claim signature is judged against its signing certificate's validity period. With an
RFC 3161 timestamp in the signature, validators judge it at the *timestamp's* time instead,
so a manifest stays valid after the leaf certificate expires. The studio runs offline, so it
is its own timestamp authority: a P-256 key and a certificate with the critical
``id-kp-timeStamping`` extended key usage (RFC 3161 section 2.3), issued by the studio's
C2PA root CA at the same time as the signing leaf (``watermark.certs``).

c2pa-rs asks for a timestamp only by HTTP (``ta_url`` in the signer info: it POSTs an
``application/timestamp-query`` and expects an ``application/timestamp-reply``), so
``LoopbackTsa`` serves ``TimestampAuthority.respond`` on 127.0.0.1, on an ephemeral port and
a random path, only for the duration of one signing.

Example::

    authority = TimestampAuthority.from_pem(tsa_chain_pem, tsa_key_pem)
    with LoopbackTsa(authority) as url:
        ...  # c2pa.C2paSignerInfo(alg, chain, key, url)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import TracebackType
from typing import Any

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from watermark.errors import SigningCredentialInvalid

TSA_POLICY_OID = "2.25.309070971986100546522428059284822271210"
"""The studio TSA's policy (a UUID-derived OID, X.667: no registration needed)."""

_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}
_MAX_REQUEST_BYTES = 16 * 1024  # a TimeStampReq is ~100 bytes; refuse anything far larger
_QUERY_TYPE, _REPLY_TYPE = "application/timestamp-query", "application/timestamp-reply"


class TimestampAuthority:
    """Answers RFC 3161 ``TimeStampReq``s with signed ``TimeStampResp``s (DER in, DER out).

    ``chain`` is the TSA certificate first, then its issuers (sent when a request sets
    ``certReq``). Tokens carry a ``signingCertificateV2`` attribute (RFC 5816) naming the
    TSA certificate by its SHA-256 hash, and the request's nonce when it has one.
    """

    def __init__(self, *, chain: list[x509.Certificate], key: ec.EllipticCurvePrivateKey) -> None:
        _check_tsa_certificate(chain[0], key)
        self._chain_der = [cert.public_bytes(serialization.Encoding.DER) for cert in chain]
        self._valid_from, self._valid_until = chain[0].not_valid_before_utc, chain[0].not_valid_after_utc
        self._certificate = asn1_x509.Certificate.load(self._chain_der[0])
        self._issuer_and_serial = cms.IssuerAndSerialNumber(
            {"issuer": self._certificate.issuer, "serial_number": self._certificate.serial_number}
        )
        # Built and encoded once: asn1crypto takes milliseconds to encode these nested structures.
        certificates = [asn1_x509.Certificate.load(der) for der in self._chain_der]
        self._certificates = cms.CertificateSet(certificates, implicit=0)
        essid = tsp.ESSCertIDv2({"cert_hash": hashlib.sha256(self._chain_der[0]).digest()})
        self._certificate_attribute = cms.CMSAttribute(
            {"type": "signing_certificate_v2", "values": [{"certs": [essid]}]}
        )
        for value in (self._certificates, self._issuer_and_serial, self._certificate_attribute):
            value.dump()
        self._key = key

    @classmethod
    def from_pem(cls, chain_pem: bytes, key_pem: bytes) -> TimestampAuthority:
        """The TSA from its PEM chain (TSA certificate first) and PKCS#8 P-256 private key."""
        try:
            chain = x509.load_pem_x509_certificates(chain_pem)
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise SigningCredentialInvalid("the timestamp authority's certificate or key is not valid PEM") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise SigningCredentialInvalid("the timestamp authority's key must be ECDSA P-256")
        return cls(chain=chain, key=key)

    def respond(self, request_der: bytes, *, now: dt.datetime | None = None) -> bytes:
        """The DER ``TimeStampResp`` for one DER ``TimeStampReq``: granted, or a rejection naming why."""
        try:
            request = tsp.TimeStampReq.load(request_der, strict=True)
            algorithm = request["message_imprint"]["hash_algorithm"]["algorithm"].native
            digest = request["message_imprint"]["hashed_message"].native
            policy = request["req_policy"].native
            nonce = request["nonce"].native
            cert_req = bool(request["cert_req"].native)
            version = request["version"].native
            extensions = request["extensions"].native
        except (ValueError, TypeError, KeyError):
            return _rejection("bad_data_format")
        if version != "v1":
            return _rejection("bad_request")
        if _DIGEST_SIZES.get(algorithm) != len(digest or b""):
            return _rejection("bad_alg")
        if policy is not None and policy != TSA_POLICY_OID:
            return _rejection("unaccepted_policy")
        if extensions:
            return _rejection("unaccepted_extensions")
        gen_time = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).replace(microsecond=0)
        if not self._valid_from <= gen_time <= self._valid_until:
            return _rejection("time_not_available")  # never issue a token the TSA certificate does not cover
        info = {
            "version": "v1",
            "policy": TSA_POLICY_OID,
            "message_imprint": {"hash_algorithm": {"algorithm": algorithm}, "hashed_message": digest},
            "serial_number": secrets.randbits(120) + 1,  # unique per token, positive, < 2^160
            "gen_time": gen_time,
            "accuracy": {"seconds": 1},
        }
        if nonce is not None:
            info["nonce"] = nonce
        token = self._token(tsp.TSTInfo(info).dump(), include_certificates=cert_req)
        der: bytes = tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token}).dump()
        return der

    def _token(self, tst_info_der: bytes, *, include_certificates: bool) -> cms.ContentInfo:
        """A CMS SignedData over the TSTInfo, signed with the TSA key (RFC 3161 section 2.4.2)."""
        attributes = [
            cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
            cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(tst_info_der).digest()]}),
            self._certificate_attribute,
        ]
        # DER orders a SET OF by the encodings; the signature covers the SET's DER.
        signed_attrs = cms.CMSAttributes(sorted(attributes, key=lambda attribute: attribute.dump()))
        signature = self._key.sign(signed_attrs.dump(), ec.ECDSA(hashes.SHA256()))
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier({"issuer_and_serial_number": self._issuer_and_serial}),
                "digest_algorithm": {"algorithm": "sha256"},
                "signed_attrs": signed_attrs,
                "signature_algorithm": {"algorithm": "sha256_ecdsa"},
                "signature": signature,
            }
        )
        signed_data: dict[str, Any] = {
            "version": "v3",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {"content_type": "tst_info", "content": core.ParsableOctetString(tst_info_der)},
            "signer_infos": [signer_info],
        }
        if include_certificates:
            signed_data["certificates"] = self._certificates
        return cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed_data)})


class LoopbackTsa:
    """A context manager serving a TimestampAuthority over HTTP on 127.0.0.1; yields its URL.

    The port is ephemeral and the path a fresh random token, so only the process that holds
    the URL (c2pa-rs, inside this process) can reach it; it answers POSTs to that path only.
    """

    def __init__(self, authority: TimestampAuthority) -> None:
        self._authority = authority
        self._server: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> str:
        path = f"/{secrets.token_urlsafe(16)}"
        handler = _handler_for(self._authority, path)
        self._server = HTTPServer(("127.0.0.1", 0), handler)
        # A short poll interval so that shutdown() at the end of a signing returns within ~2 ms.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.002}, name="studio-tsa", daemon=True
        )
        self._thread.start()
        host, port = self._server.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else host
        return f"http://{host_text}:{port}{path}"

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None


def _handler_for(authority: TimestampAuthority, path: str) -> type[BaseHTTPRequestHandler]:
    class _TsaHandler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            length = int(self.headers.get("Content-Length") or 0)
            if self.path != path:
                self.send_error(404)
                return
            if not 0 < length <= _MAX_REQUEST_BYTES:
                self.send_error(413 if length else 411)
                return
            reply = authority.respond(self.rfile.read(length))
            self.send_response(200)
            self.send_header("Content-Type", _REPLY_TYPE)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the http.server API)
            """Silent: the studio logs the render, not each loopback request."""

    return _TsaHandler


class _RejectionResp(core.Sequence):  # type: ignore[misc]  # asn1crypto ships no type information
    """A TimeStampResp without a token (asn1crypto's own class insists on one, RFC 3161 does not)."""

    _fields = [("status", tsp.PKIStatusInfo)]


def _rejection(reason: str) -> bytes:
    der: bytes = _RejectionResp({"status": {"status": "rejection", "fail_info": {reason}}}).dump()
    return der


def _check_tsa_certificate(certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    """RFC 3161 section 2.3: exactly the id-kp-timeStamping purpose, marked critical; and the key matches."""
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise SigningCredentialInvalid("the timestamp authority's certificate has no extended key usage") from None
    if not eku.critical or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise SigningCredentialInvalid(
            "the timestamp authority's certificate must have only the critical timeStamping key usage"
        )
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise SigningCredentialInvalid("the private key does not belong to the timestamp authority's certificate")
