#!/usr/bin/env python3
"""Independent (Python) implementation of the audit log's Merkle tree (RFC 6962 MTH, PATH and
PROOF, written from the RFC's recursive definitions) and of a C2SP tlog-checkpoint signed note,
used to write tests/vectors/merkle.json.
Run: python3 scripts/gen_merkle_vectors.py > tests/vectors/merkle.json
(needs the `cryptography` package for Ed25519)."""
import base64, hashlib, json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

def H(b):
    return hashlib.sha256(b).digest()

def leaf(entry_hash):
    return H(b"\x00" + entry_hash)

def mth(d):
    n = len(d)
    if n == 0:
        return H(b"")
    if n == 1:
        return d[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return H(b"\x01" + mth(d[:k]) + mth(d[k:]))

def path(m, d):
    n = len(d)
    if n <= 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return path(m, d[:k]) + [mth(d[k:])]
    return path(m - k, d[k:]) + [mth(d[:k])]

def subproof(m, d, b):
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return subproof(m, d[:k], b) + [mth(d[k:])]
    return subproof(m - k, d[k:], False) + [mth(d[:k])]

def proof(m, d):
    if m == 0 or m == len(d):
        return []
    return subproof(m, d, True)

# The leaves: the entries of tests/vectors/audit-chain.json, then synthetic entry hashes.
with open("tests/vectors/audit-chain.json") as f:
    chain = json.load(f)["entries"]
entry_hashes = [bytes.fromhex(e["hash"]) for e in chain]
while len(entry_hashes) < 40:
    entry_hashes.append(H(b"tokenward merkle vector entry " + str(len(entry_hashes)).encode()))
leaves = [leaf(h) for h in entry_hashes]
hx = lambda b: b.hex()

roots = [{"size": n, "root": hx(mth(leaves[:n]))} for n in range(0, 41)]
inclusion = []
for n in list(range(1, 18)) + [31, 32, 33, 40]:
    for m in range(n):
        inclusion.append({"index": m, "size": n, "proof": [hx(p) for p in path(m, leaves[:n])]})
consistency = []
for n in list(range(1, 18)) + [31, 32, 33, 40]:
    for m in range(1, n + 1):
        consistency.append({"old": m, "new": n, "proof": [hx(p) for p in proof(m, leaves[:n])]})

# A signed tree head: C2SP tlog-checkpoint body in a C2SP signed note, Ed25519.
seed = H(b"tokenward merkle vector signing seed")
sk = Ed25519PrivateKey.from_private_bytes(seed)
pk = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
name = "tokenward.example/audit"
origin = "tokenward.example/audit"
size = 40
body = f"{origin}\n{size}\n{base64.b64encode(mth(leaves[:size])).decode()}\n"
key_hash = H(name.encode() + b"\n\x01" + pk)[:4]
sig = sk.sign(body.encode())
note = body + "\n" + "\u2014 " + name + " " + base64.b64encode(key_hash + sig).decode() + "\n"

print(json.dumps({
    "format": "RFC 6962 Merkle tree over the audit chain: leaf = SHA-256(0x00 || entry hash), node = SHA-256(0x01 || l || r); C2SP tlog-checkpoint signed note (Ed25519)",
    "entry_hashes": [hx(h) for h in entry_hashes],
    "roots": roots,
    "inclusion": inclusion,
    "consistency": consistency,
    "note": {"seed": hx(seed), "public_key": hx(pk), "key_name": name, "origin": origin, "size": size, "text": note},
}, indent=1, ensure_ascii=False))
