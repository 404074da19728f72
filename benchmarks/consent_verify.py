"""How long does the consent decision take? (proof + policy, with and without the face distance)

Run:  python benchmarks/consent_verify.py [--runs 2000]

Every stage is timed in the same loop, interleaved, so a noisy shared CPU affects them alike.
Prints medians and 95th percentiles in microseconds; the target is a median below 1 ms for
``verify_consent`` from JSON text without a face embedding.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from consent.credential import LikenessConsent, issue_consent
from consent.keys import did_key_from_public, generate_keypair
from consent.proof import canonicalize, parse_json, verify_proof
from consent.verify import ConsentRequest, RevocationList, TrustList, check_policy, verify_consent

NOW = datetime(2027, 3, 1, tzinfo=timezone.utc)


def _credential() -> tuple[str, str, list[float]]:
    key = generate_keypair()
    did = did_key_from_public(key.public_key())
    template = [math.sin(i) / 10 for i in range(128)]
    document = issue_consent(
        issuer_key=key, subject_did=did, subject_name="Eileen M. Collins", grantor={"role": "self"},
        grantee_name="Example Film Studio", reference_image_sha256=["ab" * 32], face_vector=template,
        project="Orbit (documentary, 2027)", purposes=["film", "education"], territory=["worldwide"],
        max_duration_seconds=120, prohibited=["political endorsement", "sexual content"],
        valid_from=NOW - timedelta(days=30), valid_until=NOW + timedelta(days=300),
        compensation="contract ORB-2027-114",
        representation={"type": "union", "reference": "SAG-AFTRA TV/Theatrical 2023"}, now=NOW,
    )  # fmt: skip
    return json.dumps(document, indent=2), did, [v + 0.01 for v in template]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()

    text, did, likeness = _credential()
    document = parse_json(text)
    parsed = LikenessConsent.from_document(document)
    request = ConsentRequest(purpose="film", project="Orbit (documentary, 2027)", duration_seconds=60)
    trust, status = TrustList([did]), RevocationList([f"urn:uuid:{i}" for i in range(1000)])
    common = dict(request=request, trust=trust, status=status, now=NOW)

    stages: dict[str, Callable[[], object]] = {
        "parse_json (strict I-JSON)": lambda: parse_json(text),
        "LikenessConsent.from_document": lambda: LikenessConsent.from_document(document),
        "canonicalize (RFC 8785)": lambda: canonicalize(document),
        "verify_proof": lambda: verify_proof(document),
        "check_policy": lambda: check_policy(parsed, request, now=NOW),
        "verify_consent, text, no face": lambda: verify_consent(
            text, likeness=None, require_likeness=False, **common
        ),
        "verify_consent, text + face": lambda: verify_consent(text, likeness=likeness, **common),
        "verify_consent, parsed + face": lambda: verify_consent(parsed, likeness=likeness, **common),
    }
    timings: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(50):  # warm-up
        for stage in stages.values():
            stage()
    for _ in range(args.runs):
        for name, stage in stages.items():
            start = time.perf_counter()
            stage()
            timings[name].append(time.perf_counter() - start)

    print(f"credential: {len(text)} bytes of JSON, {args.runs} runs per row (interleaved)")
    print(f"{'stage':<34} {'median µs':>10} {'p95 µs':>10}")
    for name, values in timings.items():
        values.sort()
        p95 = values[int(0.95 * (len(values) - 1))]
        print(f"{name:<34} {statistics.median(values) * 1e6:>10.0f} {p95 * 1e6:>10.0f}")


if __name__ == "__main__":
    main()
