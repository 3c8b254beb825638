"""AWS Signature Version 4, checked as AWS checks every request it is sent.

The algorithm is AWS's ("Create a signed AWS API request", IAM User Guide): a canonical request
(method, path, query, the signed headers as ``name:value`` with runs of spaces folded, the
signed header names, the payload's SHA-256), a string to sign (algorithm, ``X-Amz-Date``,
credential scope, the canonical request's SHA-256), and an HMAC-SHA256 chain from
``"AWS4" + secret`` through date, region, service and ``aws4_request``. DynamoDB answers a
request without one with ``MissingAuthenticationTokenException`` and a wrong one with
``InvalidSignatureException`` ("The request signature we calculated does not match the
signature you provided"), both HTTP 400 (DynamoDB API reference, "Common Errors"); a scope for
another region or service is refused too.

The emulator does not know which access key a secret belongs to (tests hand out one key id
with several secrets), so a signature passes when any known secret reproduces it. The clock
is not checked: the emulator's clock is virtual.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from safe_singer_testing.emulators.dynamodb_streams.model import StreamsError

SERVICE = "dynamodb"  # Streams requests are signed for DynamoDB (botocore: signingName)
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<scope>[^,]+), ?"
    r"SignedHeaders=(?P<headers>[^,]+), ?Signature=(?P<signature>[0-9a-f]{64})"
)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def check(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Iterable[str],
    region: str,
) -> None:
    """Raise the error DynamoDB answers unless one of ``secrets`` signed this request
    (``headers`` by lower-case name)."""
    authorization = headers.get("authorization")
    if not authorization:
        raise StreamsError(
            "MissingAuthenticationTokenException", "Request is missing Authentication Token"
        )
    found = _AUTHORIZATION.fullmatch(authorization.strip())
    amz_date = headers.get("x-amz-date")
    if found is None or amz_date is None:
        raise StreamsError(
            "IncompleteSignatureException",
            "Authorization requires Credential, SignedHeaders and Signature, and X-Amz-Date",
        )
    signed = found["headers"].split(";")
    canonical_headers = "".join(
        f"{name}:{' '.join((headers.get(name) or '').split())}\n" for name in signed
    )
    split = urlsplit(path)
    canonical = "\n".join(
        [
            method,
            split.path or "/",
            "&".join(sorted(split.query.split("&"))) if split.query else "",
            canonical_headers,
            found["headers"],
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = found["scope"]
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    date, signed_region, service, terminal = [*scope.split("/"), "", "", "", ""][:4]
    if (signed_region, service, terminal) != (region, SERVICE, "aws4_request"):
        raise StreamsError(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region and service: '{region}', "
            f"'{SERVICE}' (the scope was '{scope}').",
        )
    for secret in secrets:
        key = _hmac(("AWS4" + secret).encode(), date)
        for part in (region, SERVICE, terminal):
            key = _hmac(key, part)
        if hmac.compare_digest(
            hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), found["signature"]
        ):
            return
    raise StreamsError(
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method.",
    )
