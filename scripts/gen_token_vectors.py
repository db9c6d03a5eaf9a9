#!/usr/bin/env python3
"""Independent (Python) implementation of the token format, used to write tests/vectors/token-format.json.

The Rust tests check that token-core agrees with every vector, so the format is pinned by two
implementations. Run: python3 scripts/gen_token_vectors.py > tests/vectors/token-format.json
"""
import hashlib, hmac, json, zlib

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

def b62(v, width):
    out = []
    for _ in range(width):
        out.append(ALPHABET[v % 62]); v //= 62
    assert v == 0
    return "".join(reversed(out))

def b62_decode(s):
    v = 0
    for c in s:
        v = v * 62 + ALPHABET.index(c)
    return v

def token(prefix, id_chars, secret_chars):
    head = f"{prefix}_{id_chars}{secret_chars}"
    return head + b62(zlib.crc32(head.encode()), 6)

def seq(seed, n):
    # deterministic pseudo-random base62 characters for vectors
    out, x = [], seed
    while len(out) < n:
        x = hashlib.sha256(x.to_bytes(8, "big")).digest(); x = int.from_bytes(x[:8], "big")
        out.append(ALPHABET[x % 62])
    return "".join(out)

key = bytes(range(32))
valid = []
cases = [("acme_prod", seq(1, 17), seq(2, 43)), ("a", "0" * 17, "0" * 43),
         ("x9_y8_z7", "z" * 17, "z" * 43), ("abcdefghijklmnopqrstuvwxyz012345", seq(3, 17), seq(4, 43)),
         ("tw", seq(5, 17), seq(6, 43))]
for prefix, i, s in cases:
    t = token(prefix, i, s)
    valid.append({"prefix": prefix, "id": i, "id_u128": str(b62_decode(i)), "secret": s, "token": t,
                  "checksum": t[-6:], "digest_key_id": 7,
                  "digest_hmac_sha256_hex": hmac.new(key, s.encode(), hashlib.sha256).hexdigest()})

good = valid[0]["token"]
flip = lambda t, i, c: t[:i] + c + t[i + 1:]
last = good[-1]
invalid = [
    {"input": "", "error": "MissingSeparator"},
    {"input": "acmeprod", "error": "MissingSeparator"},
    {"input": "x" * 200, "error": "TooLong"},
    {"input": "acme_prod_" + "é" * 33, "error": "NonAscii"},
    {"input": "Acme_" + good.split("_")[-1], "error": "BadPrefix"},
    {"input": "_" + good.split("_")[-1], "error": "BadPrefix"},
    {"input": "acme__prod_" + good.split("_")[-1], "error": "BadPrefix"},
    {"input": good[:-1], "error": "BadLength"},
    {"input": good + "0", "error": "BadLength"},
    {"input": flip(good, 12, "-"), "error": "BadCharacter"},
    {"input": flip(good, 12, "!"), "error": "BadCharacter"},
    {"input": flip(good, len(good) - 1, "0" if last != "0" else "1"), "error": "BadChecksum"},
    {"input": flip(good, 20, "A" if good[20] != "A" else "B"), "error": "BadChecksum"},
    {"input": "other_" + good.split("_")[-1], "error": "BadChecksum"},
    {"input": token("other", seq(1, 17), seq(2, 43)), "error": "WrongPrefix"},
]
print(json.dumps({
    "format": "tokenward token v1: <prefix>_<17 base62 id><43 base62 secret><6 base62 CRC-32>",
    "alphabet": ALPHABET,
    "digest_key_hex": key.hex(),
    "expected_prefix_for_invalid": "acme_prod",
    "valid": valid, "invalid": invalid}, indent=2))
