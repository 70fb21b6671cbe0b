"""Independent ES256 verifier for the token-kms tests: Python `cryptography` (OpenSSL).

Reads {"token": ..., "jwks": {...}} as JSON on stdin. Checks the header (alg ES256, typ
at+jwt, a kid found in the JWKS), rebuilds the P-256 public key from the JWK's x and y, turns the
JOSE r||s signature into DER and verifies it over the signing input. Prints "valid"
and the claims, or "invalid: <reason>"; exits 0 either way (2 on bad input).
"""
import base64
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


d = json.load(sys.stdin)
header_b64, claims_b64, sig_b64 = d["token"].split(".")
header = json.loads(b64url(header_b64))
if header.get("alg") != "ES256":
    print("invalid: alg")
    sys.exit(0)
# Explicit typing (RFC 8725 3.11): RFC 9068 access tokens, short or long form, any case.
if str(header.get("typ", "")).lower() not in ("at+jwt", "application/at+jwt"):
    print("invalid: typ")
    sys.exit(0)
keys = {k["kid"]: k for k in d["jwks"]["keys"]}
jwk = keys.get(header.get("kid"))
if jwk is None or jwk["kty"] != "EC" or jwk["crv"] != "P-256":
    print("invalid: kid")
    sys.exit(0)
public = ec.EllipticCurvePublicNumbers(
    int.from_bytes(b64url(jwk["x"]), "big"), int.from_bytes(b64url(jwk["y"]), "big"), ec.SECP256R1()
).public_key()
sig = b64url(sig_b64)
if len(sig) != 64:
    print("invalid: signature length")
    sys.exit(0)
der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
try:
    public.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
except InvalidSignature:
    print("invalid: signature")
    sys.exit(0)
print("valid " + json.dumps(json.loads(b64url(claims_b64)), sort_keys=True))
