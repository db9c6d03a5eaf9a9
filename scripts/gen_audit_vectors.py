#!/usr/bin/env python3
"""Independent (Python) implementation of the audit hash chain, used to write
tests/vectors/audit-chain.json. Run: python3 scripts/gen_audit_vectors.py > tests/vectors/audit-chain.json
"""
import hashlib, json

def field(v):
    if v is None:
        return (0xFFFFFFFF).to_bytes(4, "big")
    b = v.encode()
    return len(b).to_bytes(4, "big") + b

def canonical(e):
    actor = e["actor"]
    actor_s = {"principal": f"principal:{actor.get('name')}", "operator": f"operator:{actor.get('name')}", "system": "system", "anonymous": "anonymous"}[actor["kind"]]
    ms = e["_millis"]
    out = field(str(e["schema"])) + field(e["_time_canonical"]) + field(actor_s)
    out += field(e["action"]["kind"]) + field(e["action"].get("detail"))
    out += field(e["token"]) + field(e["subject_hmac"])
    if e["outcome"]["kind"] == "success":
        out += field("success") + field(None)
    else:
        out += field("failure") + field(e["outcome"]["reason"])
    out += field(e["source"]) + field(str(len(e["attrs"])))
    for k in sorted(e["attrs"]):
        out += field(k) + field(e["attrs"][k])
    return out

def entry_hash(seq, prev, canon):
    return hashlib.sha256(b"tokenward-audit-v1\n" + seq.to_bytes(8, "big") + prev + canon).digest()

events = [
    {"schema": 1, "time": "2026-11-28T03:00:00.000Z", "_time_canonical": "2026-11-28T03:00:00.000Z", "_millis": 0,
     "actor": {"kind": "principal", "name": "billing-api"}, "action": {"kind": "issue"},
     "token": "CZb3chKVwr199cDHd", "subject_hmac": None, "outcome": {"kind": "success"}, "source": None, "attrs": {}},
    {"schema": 1, "time": "2026-11-28T03:00:01.250Z", "_time_canonical": "2026-11-28T03:00:01.250Z", "_millis": 250,
     "actor": {"kind": "principal", "name": "billing-api"}, "action": {"kind": "verify_denied", "detail": "token scopes do not allow this request"},
     "token": "CZb3chKVwr199cDHd", "subject_hmac": None, "outcome": {"kind": "failure", "reason": "out of scope"},
     "source": "10.0.0.7", "attrs": {"request": "s3:bucket/prod-logs/a:write", "b": "2"}},
    {"schema": 1, "time": "2026-11-28T03:05:00.001Z", "_time_canonical": "2026-11-28T03:05:00.001Z", "_millis": 1,
     "actor": {"kind": "operator", "name": "alice@example"}, "action": {"kind": "revoke"},
     "token": "CZb3chKVwr199cDHd", "subject_hmac": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
     "outcome": {"kind": "success"}, "source": None, "attrs": {}},
    {"schema": 1, "time": "2026-11-28T03:06:00.000Z", "_time_canonical": "2026-11-28T03:06:00.000Z", "_millis": 0,
     "actor": {"kind": "system"}, "action": {"kind": "rotate", "detail": "promote"},
     "token": None, "subject_hmac": None, "outcome": {"kind": "success"}, "source": None, "attrs": {"secret": "svc/aws"}},
    {"schema": 1, "time": "2026-11-28T03:07:00.999Z", "_time_canonical": "2026-11-28T03:07:00.999Z", "_millis": 999,
     "actor": {"kind": "anonymous"}, "action": {"kind": "verify_denied", "detail": "malformed"},
     "token": None, "subject_hmac": "0b5d3c1bd2bb2e4f29a5c6f4e03c1a3e1f0f6d2b7e6a3c7d9e1f2a3b4c5d6e7f",
     "outcome": {"kind": "failure", "reason": "malformed token: \"quoted\"\ttab\u0001 é"}, "source": "2001:db8::1",
     "attrs": {"request": "kv:teams/a/b:read"}},
]
prev = bytes(32)
entries = []
for seq, e in enumerate(events):
    canon = canonical(e)
    h = entry_hash(seq, prev, canon)
    public = {k: v for k, v in e.items() if not k.startswith("_")}
    entries.append({"seq": seq, "prev": prev.hex(), "hash": h.hex(), "event": public, "canonical_hex": canon.hex()})
    prev = h
print(json.dumps({"format": "tokenward audit chain v1: SHA-256(\"tokenward-audit-v1\\n\" || seq u64 BE || prev || canonical(event))",
                  "entries": entries, "head": {"len": len(entries), "head": prev.hex()}}, indent=2))
