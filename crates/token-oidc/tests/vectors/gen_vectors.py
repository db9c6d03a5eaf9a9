#!/usr/bin/env python3
"""Test vectors for token-oidc, made by an independent JOSE implementation (jwcrypto, on the
`cryptography` package): subject tokens with GitHub Actions' and Kubernetes' documented claim
sets and every failure case, DPoP proofs and theirs, and the RFC 7638 / RFC 9449 examples
(copied from the RFC text and checked here by jwcrypto too).

    pip install jwcrypto          # 1.6 was used
    python3 crates/token-oidc/tests/vectors/gen_vectors.py

Writes jwks.json, jwt.json, dpop.json and rfc.json beside this script. Keys are fresh on every
run; the Rust tests read the files only.
"""

import base64
import hashlib
import hmac
import json
import os
import uuid

from jwcrypto import jwk, jws

HERE = os.path.dirname(os.path.abspath(__file__))
NOW = 1765000000  # the instant every case is validated at

GITHUB_ISS = "https://token.actions.githubusercontent.com"
K8S_ISS = "https://kubernetes.default.svc.cluster.local"
GENERIC_ISS = "https://issuer.example.com"
AUD = "tokenward"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: dict, payload: dict, key, alg=None) -> str:
    """Sign with jwcrypto: the protected header exactly as given."""
    token = jws.JWS(json.dumps(payload, separators=(",", ":")).encode())
    token.add_signature(key, alg=alg or header["alg"], protected=json.dumps(header, separators=(",", ":")))
    return token.serialize(compact=True)


def unsigned(header: dict, payload: dict, sig: bytes = b"") -> str:
    h = b64(json.dumps(header, separators=(",", ":")).encode())
    p = b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{h}.{p}.{b64(sig)}"


def hs256_with(secret: bytes, header: dict, payload: dict) -> str:
    h = b64(json.dumps(header, separators=(",", ":")).encode())
    p = b64(json.dumps(payload, separators=(",", ":")).encode())
    mac = hmac.new(secret, f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64(mac)}"


def public(key, kid, **extra) -> dict:
    d = json.loads(key.export_public())
    d["kid"] = kid
    d.update(extra)
    return d


# ---- the issuer's keys -----------------------------------------------------------------------
rsa = jwk.JWK.generate(kty="RSA", size=2048)
ec = jwk.JWK.generate(kty="EC", crv="P-256")
ed = jwk.JWK.generate(kty="OKP", crv="Ed25519")
ec_tagged = jwk.JWK.generate(kty="EC", crv="P-256")  # published with "alg": "ES384"
p384 = jwk.JWK.generate(kty="EC", crv="P-384")  # a curve token-oidc does not support
rotated = jwk.JWK.generate(kty="EC", crv="P-256")  # published only in jwks_rotated.json
attacker = jwk.JWK.generate(kty="RSA", size=2048)

jwks_doc = {
    "keys": [
        public(rsa, "rsa-1", alg="RS256", use="sig"),
        public(ec, "ec-1", use="sig"),
        public(ed, "ed-1"),
        public(ec_tagged, "ec-tagged", alg="ES384"),
        public(p384, "p384-1"),
    ]
}
rotated_doc = {"keys": jwks_doc["keys"] + [public(rotated, "ec-2")]}


def github_claims(**over):
    # GitHub's documented example claim set (docs: "About security hardening with OpenID
    # Connect"), for audience `tokenward`.
    c = {
        "jti": str(uuid.uuid4()),
        "sub": "repo:octo-org/octo-repo:environment:prod",
        "environment": "prod",
        "aud": AUD,
        "ref": "refs/heads/main",
        "sha": "example-sha",
        "repository": "octo-org/octo-repo",
        "repository_owner": "octo-org",
        "actor_id": "12",
        "repository_visibility": "private",
        "repository_id": "74",
        "repository_owner_id": "65",
        "run_id": "example-run-id",
        "run_number": "10",
        "run_attempt": "2",
        "runner_environment": "github-hosted",
        "actor": "octocat",
        "workflow": "example-workflow",
        "head_ref": "",
        "base_ref": "",
        "event_name": "workflow_dispatch",
        "ref_type": "branch",
        "ref_protected": "true",
        "job_workflow_ref": "octo-org/octo-automation/.github/workflows/oidc.yml@refs/heads/main",
        "iss": GITHUB_ISS,
        "nbf": NOW - 60,
        "exp": NOW + 240,
        "iat": NOW - 60,
    }
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def k8s_claims(**over):
    # A projected service-account token (Kubernetes 1.29+, with jti and node claims).
    c = {
        "aud": [AUD, "https://kubernetes.default.svc"],
        "exp": NOW + 3000,
        "iat": NOW - 600,
        "iss": K8S_ISS,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": {
            "namespace": "ci",
            "node": {"name": "node-1", "uid": "2d0c4a1e-8a9b-4c0e-9b2a-0c6b3e5b8f11"},
            "pod": {"name": "runner-7f9c", "uid": "5b2f0a47-3c1d-4e8b-a0f4-7d7a1f0c2e33"},
            "serviceaccount": {"name": "deployer", "uid": "9e1f3b2c-6a4d-4f0e-8c5b-1a2b3c4d5e6f"},
            "warnafter": NOW + 2400,
        },
        "nbf": NOW - 600,
        "sub": "system:serviceaccount:ci:deployer",
    }
    c.update(over)
    return c


def generic(**over):
    c = {"iss": GENERIC_ISS, "sub": "svc-42", "aud": AUD, "iat": NOW - 10, "exp": NOW + 290,
         "jti": str(uuid.uuid4()), "team": "payments", "build": 1234}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


gh_header = {"typ": "JWT", "alg": "RS256", "kid": "rsa-1"}
k8s_header = {"alg": "RS256", "kid": "rsa-1"}
jwt_cases = []


def case(name, token, issuer, expect, replay=False, **extra):
    jwt_cases.append({"name": name, "token": token, "issuer": issuer, "audience": AUD,
                      "now": NOW, "expect": expect, "replay": replay, **extra})


case("github_rs256", compact(gh_header, github_claims(), rsa), GITHUB_ISS, "ok",
     subject="repo:octo-org/octo-repo:environment:prod")
case("kubernetes_rs256_aud_array", compact(k8s_header, k8s_claims(), rsa), K8S_ISS, "ok",
     subject="system:serviceaccount:ci:deployer", max_lifetime=3600)
case("generic_es256", compact({"alg": "ES256", "kid": "ec-1", "typ": "JWT"}, generic(), ec), GENERIC_ISS, "ok",
     subject="svc-42")
case("generic_eddsa", compact({"alg": "EdDSA", "kid": "ed-1"}, generic(), ed), GENERIC_ISS, "ok", subject="svc-42")
case("expired_within_skew", compact(gh_header, github_claims(exp=NOW - 30, iat=NOW - 330, nbf=NOW - 330), rsa),
     GITHUB_ISS, "ok", subject="repo:octo-org/octo-repo:environment:prod")
case("wrong_audience", compact(gh_header, github_claims(aud="https://github.com/octo-org"), rsa), GITHUB_ISS,
     "WrongAudience")
case("expired", compact(gh_header, github_claims(exp=NOW - 120, iat=NOW - 420, nbf=NOW - 420), rsa), GITHUB_ISS,
     "Expired")
case("not_yet_valid", compact(gh_header, github_claims(nbf=NOW + 300, iat=NOW, exp=NOW + 600), rsa), GITHUB_ISS,
     "NotYetValid")
case("issued_in_future", compact(gh_header, github_claims(nbf=None, iat=NOW + 300, exp=NOW + 600), rsa),
     GITHUB_ISS, "IssuedInFuture")
case("lifetime_too_long", compact(gh_header, github_claims(iat=NOW - 60, exp=NOW + 7200), rsa), GITHUB_ISS,
     "LifetimeTooLong")
case("wrong_issuer", compact(gh_header, github_claims(iss="https://token.actions.githubusercontent.com.evil"), rsa),
     GITHUB_ISS, "WrongIssuer")
case("unknown_kid", compact({"typ": "JWT", "alg": "RS256", "kid": "rsa-9"}, github_claims(), attacker), GITHUB_ISS,
     "UnknownKey")
case("alg_none", unsigned({"typ": "JWT", "alg": "none", "kid": "rsa-1"}, github_claims()), GITHUB_ISS, "AlgNone")
rsa_pem = rsa.export_to_pem(private_key=False)
case("hs256_with_the_public_key_as_secret",
     hs256_with(rsa_pem, {"typ": "JWT", "alg": "HS256", "kid": "rsa-1"}, github_claims()), GITHUB_ISS, "Hmac")
case("forged_signature", compact(gh_header, github_claims(), attacker), GITHUB_ISS, "BadSignature")
good = compact(gh_header, github_claims(), rsa)
h, p, s = good.split(".")
tampered = json.loads(base64.urlsafe_b64decode(p + "==="))
tampered["repository"] = "octo-org/other-repo"
case("tampered_payload", f"{h}.{b64(json.dumps(tampered).encode())}.{s}", GITHUB_ISS, "BadSignature")
case("alg_disagrees_with_key_type", compact({"typ": "JWT", "alg": "ES256", "kid": "rsa-1"}, github_claims(), ec),
     GITHUB_ISS, "KeyAlgorithmMismatch")
case("alg_disagrees_with_jwk_alg", compact({"alg": "ES256", "kid": "ec-tagged"}, generic(), ec_tagged), GENERIC_ISS,
     "KeyAlgorithmMismatch")
case("unsupported_curve_key", compact({"alg": "ES384", "kid": "p384-1"}, generic(), p384), GENERIC_ISS,
     "AlgorithmNotAllowed")
case("rsa_pss_not_allowed", compact({"alg": "PS256", "kid": "rsa-1"}, generic(), rsa), GENERIC_ISS,
     "AlgorithmNotAllowed")
case("replayed_jti", compact(gh_header, github_claims(), rsa), GITHUB_ISS, "Replayed", replay=True)
case("missing_audience", compact(gh_header, github_claims(aud=None), rsa), GITHUB_ISS, "MissingClaim")
case("missing_jti", compact(gh_header, github_claims(jti=None), rsa), GITHUB_ISS, "MissingClaim")
case("dpop_proof_as_subject_token", compact({"typ": "dpop+jwt", "alg": "RS256", "kid": "rsa-1"}, github_claims(), rsa),
     GITHUB_ISS, "WrongType")
case("critical_header", compact({"alg": "RS256", "kid": "rsa-1", "crit": ["b64"], "b64": True}, github_claims(), rsa),
     GITHUB_ISS, "CriticalHeader")
case("rotated_key_after_refetch", compact({"alg": "ES256", "kid": "ec-2"}, generic(), rotated), GENERIC_ISS,
     "UnknownKey", after_rotation="ok")

# ---- DPoP proofs --------------------------------------------------------------------------------
dk_ec = jwk.JWK.generate(kty="EC", crv="P-256")
dk_rsa = jwk.JWK.generate(kty="RSA", size=2048)
dk_ed = jwk.JWK.generate(kty="OKP", crv="Ed25519")
other = jwk.JWK.generate(kty="EC", crv="P-256")
ACCESS = "acme_prod_3fQmExampleAccessToken0123456789"
ath = b64(hashlib.sha256(ACCESS.encode()).digest())
dpop_cases = []


def pub(key):
    return json.loads(key.export_public())


def proof(key, alg, htm, htu, iat=NOW - 2, header_over=None, **claims):
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": pub(key)}
    header.update(header_over or {})
    payload = {"jti": b64(os.urandom(16)), "htm": htm, "htu": htu, "iat": iat}
    payload.update(claims)
    return compact(header, {k: v for k, v in payload.items() if v is not None}, key, alg=alg)


def dcase(name, prf, method, uri, expect, key=None, **extra):
    d = {"name": name, "proof": prf, "method": method, "uri": uri, "now": NOW, "expect": expect}
    if key is not None:
        d["thumbprint"] = key.thumbprint()  # jwcrypto's RFC 7638 SHA-256 thumbprint
    d.update(extra)
    dpop_cases.append(d)


T = "https://server.example.com/token"
R = "https://resource.example.org/protectedresource"
dcase("es256_token_request", proof(dk_ec, "ES256", "POST", T), "POST", T, "ok", key=dk_ec)
dcase("rs256_resource_with_ath", proof(dk_rsa, "RS256", "GET", R, ath=ath), "GET", R + "?page=2#top", "ok",
      key=dk_rsa, access_token=ACCESS)
dcase("eddsa_resource_with_ath", proof(dk_ed, "EdDSA", "GET", R, ath=ath), "GET", R, "ok", key=dk_ed,
      access_token=ACCESS)
dcase("htu_normalised", proof(dk_ec, "ES256", "POST", "HTTPS://Server.Example.COM:443/./token"), "POST", T, "ok",
      key=dk_ec)
dcase("bound_key_matches", proof(dk_ec, "ES256", "GET", R, ath=ath), "GET", R, "ok", key=dk_ec,
      access_token=ACCESS, bound_to=dk_ec.thumbprint())
dcase("nonce_matches", proof(dk_ec, "ES256", "POST", T, nonce="eyJ7S_zG.eyJH0-Z.HX4w-7v"), "POST", T, "ok",
      key=dk_ec, nonce="eyJ7S_zG.eyJH0-Z.HX4w-7v")
dcase("wrong_htm", proof(dk_ec, "ES256", "GET", T), "POST", T, "WrongMethod")
dcase("wrong_htu", proof(dk_ec, "ES256", "POST", "https://server.example.com/other"), "POST", T, "WrongUri")
dcase("wrong_htu_host", proof(dk_ec, "ES256", "POST", "https://evil.example.com/token"), "POST", T, "WrongUri")
dcase("wrong_ath", proof(dk_ec, "ES256", "GET", R, ath=b64(hashlib.sha256(b"another token").digest())), "GET", R,
      "WrongAth", access_token=ACCESS)
dcase("missing_ath", proof(dk_ec, "ES256", "GET", R), "GET", R, "MissingAth", access_token=ACCESS)
dcase("stale_iat", proof(dk_ec, "ES256", "POST", T, iat=NOW - 300), "POST", T, "Stale")
dcase("future_iat", proof(dk_ec, "ES256", "POST", T, iat=NOW + 120), "POST", T, "FromFuture")
dcase("private_key_in_header",
      proof(dk_ec, "ES256", "POST", T, header_over={"jwk": json.loads(dk_ec.export_private())}), "POST", T,
      "PrivateKey")
dcase("typ_jwt", proof(dk_ec, "ES256", "POST", T, header_over={"typ": "JWT"}), "POST", T, "WrongType")
dcase("alg_none", unsigned({"typ": "dpop+jwt", "alg": "none", "jwk": pub(dk_ec)},
                           {"jti": "x1", "htm": "POST", "htu": T, "iat": NOW}), "POST", T, "AlgNone")
dcase("hs256", hs256_with(b"k" * 32, {"typ": "dpop+jwt", "alg": "HS256", "jwk": pub(dk_ec)},
                          {"jti": "x2", "htm": "POST", "htu": T, "iat": NOW}), "POST", T, "Hmac")
dcase("signed_by_another_key", proof(other, "ES256", "POST", T, header_over={"jwk": pub(dk_ec)}), "POST", T,
      "BadSignature")
dcase("alg_disagrees_with_jwk", proof(dk_ec, "ES256", "POST", T, header_over={"jwk": pub(dk_rsa)}), "POST", T,
      "BadKey")
dcase("no_jwk", compact({"typ": "dpop+jwt", "alg": "ES256"}, {"jti": "x3", "htm": "POST", "htu": T, "iat": NOW},
                        dk_ec), "POST", T, "MissingKey")
dcase("nonce_missing", proof(dk_ec, "ES256", "POST", T), "POST", T, "NonceRequired", nonce="n-1")
dcase("nonce_wrong", proof(dk_ec, "ES256", "POST", T, nonce="n-0"), "POST", T, "WrongNonce", nonce="n-1")
dcase("bound_to_another_key", proof(dk_ec, "ES256", "GET", R, ath=ath), "GET", R, "WrongKey",
      access_token=ACCESS, bound_to=other.thumbprint())
dcase("replayed", proof(dk_ec, "ES256", "POST", T), "POST", T, "Replayed", replay=True)

# ---- RFC examples, copied from the RFC text ---------------------------------------------------
RFC_PROOF_TOKEN = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik"
    "VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR"
    "nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE"
    "QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIj"
    "oiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwia"
    "WF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg"
    "4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
)  # RFC 9449 Figures 1 and 3
RFC_PROOF_REFRESH = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik"
    "VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR"
    "nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE"
    "QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIj"
    "oiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwia"
    "WF0IjoxNTYyMjY1Mjk2fQ.pAqut2IRDm_De6PR93SYmGBPXpwrAk90e8cP2hjiaG5Qs"
    "GSuKDYW7_X620BxqhvYC8ynrrvZLTk41mSRroapUA"
)  # RFC 9449 Figure 5
RFC_PROOF_RESOURCE = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6Ik"
    "VDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCR"
    "nMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JE"
    "QSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIj"
    "oiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0Z"
    "WRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNF"
    "c05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71E"
    "OptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA"
)  # RFC 9449 Figure 13
RFC_JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"  # RFC 9449 §6.1
RFC_ACCESS_TOKEN = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"  # RFC 9449 Figure 6
RFC_ATH = "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"  # RFC 9449 Figure 14
RFC7638_KEY = {  # RFC 7638 §3.1
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

# jwcrypto agrees with the RFC text: each example proof verifies with its header key, the
# thumbprints and the ath are what the RFCs say.
for p_ in (RFC_PROOF_TOKEN, RFC_PROOF_REFRESH, RFC_PROOF_RESOURCE):
    hdr = json.loads(base64.urlsafe_b64decode(p_.split(".")[0] + "==="))
    k = jwk.JWK(**hdr["jwk"])
    chk = jws.JWS()
    chk.deserialize(p_)
    chk.verify(k)
    assert k.thumbprint() == RFC_JKT
assert jwk.JWK(**RFC7638_KEY).thumbprint() == RFC7638_THUMBPRINT
assert b64(hashlib.sha256(RFC_ACCESS_TOKEN.encode()).digest()) == RFC_ATH

rfc = {
    "rfc7638": {"jwk": RFC7638_KEY, "thumbprint": RFC7638_THUMBPRINT},
    "rfc9449": {
        "jkt": RFC_JKT,
        "access_token": RFC_ACCESS_TOKEN,
        "ath": RFC_ATH,
        "proofs": [
            {"name": "token_request", "proof": RFC_PROOF_TOKEN, "method": "POST", "uri": T, "now": 1562262616},
            {"name": "refresh_request", "proof": RFC_PROOF_REFRESH, "method": "POST", "uri": T, "now": 1562265296},
            {"name": "resource_request", "proof": RFC_PROOF_RESOURCE, "method": "GET", "uri": R,
             "now": 1562262618, "access_token": RFC_ACCESS_TOKEN},
        ],
    },
}


def write(name, obj):
    with open(os.path.join(HERE, name), "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


write("jwks.json", jwks_doc)
write("jwks_rotated.json", rotated_doc)
write("jwt.json", {"generator": "jwcrypto", "cases": jwt_cases})
write("dpop.json", {"generator": "jwcrypto", "access_token": ACCESS, "cases": dpop_cases})
write("rfc.json", rfc)
print(f"{len(jwt_cases)} JWT cases, {len(dpop_cases)} DPoP cases, RFC examples checked")
