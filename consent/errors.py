"""Errors raised by the consent package.

One base class, ``ConsentError``; each leaf names the condition. ``user_message()`` is the
sentence a consent officer or operator sees; it never contains key material or file paths.
Leaves are grouped by the stage that raises them (document, proof and keys, trust and
status, policy, likeness) so callers can catch a whole stage when they need to.
"""


class ConsentError(Exception):
    """Base class: the consent could not be established."""

    def user_message(self) -> str:
        return str(self) or self.__class__.__name__


# --- the document itself -----------------------------------------------------------------


class MalformedCredential(ConsentError):
    """The document is not JSON, or a field is missing or has the wrong shape."""


class NotIJson(MalformedCredential):
    """The JSON is outside I-JSON (RFC 7493): duplicate names, NaN, huge integers, lone surrogates."""


class CredentialTooLarge(MalformedCredential):
    """The document is larger than the verifier accepts."""


class InvalidDid(MalformedCredential):
    """A DID or verification method is not a well-formed did:key."""


# --- proofs and keys ---------------------------------------------------------------------


class UnsupportedCryptosuite(ConsentError):
    """The proof is not a DataIntegrityProof with the eddsa-jcs-2022 cryptosuite."""


class UnsupportedKeyType(ConsentError):
    """The key is not Ed25519 (another multicodec, another DID method, another PEM key type)."""


class SignatureInvalid(ConsentError):
    """The proof's signature does not verify over the document."""


class VerificationMethodMismatch(ConsentError):
    """The proof was made with a key that is not the credential issuer's."""


class KeyFileError(ConsentError):
    """A key (or passphrase) file cannot be read, written or understood."""


class WrongPassphrase(KeyFileError):
    """The passphrase does not decrypt the key file."""


class PassphraseRequired(WrongPassphrase):
    """The key file is encrypted and no passphrase was given."""


# --- trust and status --------------------------------------------------------------------


class UnknownIssuer(ConsentError):
    """The issuer is not enrolled with the studio, or its enrolment was withdrawn."""


class ConsentRevoked(ConsentError):
    """The credential was revoked; it never verifies again."""


class ConsentExpired(ConsentError):
    """``now`` is at or after the credential's validUntil."""


class ConsentNotYetValid(ConsentError):
    """``now`` is before the credential's validFrom."""


# --- what the consent covers -------------------------------------------------------------


class MediaNotCovered(ConsentError):
    """The requested medium (e.g. video) is not among the credential's media."""


class PurposeNotCovered(ConsentError):
    """The requested purpose is not among the credential's purposes."""


class ProjectNotCovered(ConsentError):
    """The requested project is not the credential's project."""


class DurationExceeded(ConsentError):
    """The requested output is longer than maxDurationSeconds."""


# --- likeness ----------------------------------------------------------------------------


class LikenessMismatch(ConsentError):
    """The photo's face is farther from the credential's face template than maxDistance."""


class LikenessNotChecked(ConsentError):
    """No face embedding was given although the likeness check is required."""


class FaceThresholdAboveCeiling(ConsentError):
    """The credential's faceTemplate.maxDistance is looser than the studio's face-match ceiling."""


class ReferencePhotoMismatch(ConsentError):
    """At import: the reference photo's face is not the face the credential's template describes."""
