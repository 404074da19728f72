"""Consent credentials: keys, did:key, eddsa-jcs-2022 Data Integrity proofs, the LikenessConsent credential and its verification policy. Pure Python (cryptography + rfc8785)."""

