#!/usr/bin/env python3
"""Re-verify registryd's event hash chain from `registryd events` output, with nothing but
Python's standard library (what a third-party auditor would run).

    registryd events --data-dir DIR | tools/verify-chain.py
    tools/verify-chain.py events.jsonl

Each line is a stored event record. hash = SHA-256(prevHash bytes + canonical JSON of the record
without "hash"), where canonical JSON is json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False); the first prevHash is 32 zero bytes and seq counts from 1 without gaps.
Exit 0 when the chain verifies, 1 at the first bad record (its seq is printed), 2 on usage errors.
"""
import hashlib
import json
import sys


def verify(lines):
    prev = bytes(32)
    expected = 1
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            return f"line {number}: not JSON ({error})"
        seq = record.get("seq")
        if seq != expected:
            return f"seq {seq}: expected seq {expected}"
        stored = record.pop("hash", None)
        if record.get("prevHash") != prev.hex():
            return f"seq {seq}: prevHash does not match the previous record's hash"
        body = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if hashlib.sha256(prev + body).hexdigest() != stored:
            return f"seq {seq}: hash does not match the content"
        prev = bytes.fromhex(stored)
        expected += 1
    print(f"chain verified: {expected - 1} events")
    return None


def main():
    if len(sys.argv) > 2:
        print(__doc__, file=sys.stderr)
        return 2
    source = open(sys.argv[1], encoding="utf-8") if len(sys.argv) == 2 else sys.stdin
    problem = verify(source)
    if problem:
        print(f"CHAIN BROKEN at {problem}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
