#!/usr/bin/env python3
"""Writes the load-test directory: one account (history 0), an admin and N users given as
argon2id hashes so the import is quick. Usage: make_fixture.py N OUT.json"""
import json
import sys

# argon2id (m=19456,t=2,p=1) hash of "Bench-User-Pass-1234", made once with the service's own hasher.
HASH = sys.argv[3] if len(sys.argv) > 3 else None

n = int(sys.argv[1])
users = [{
    "id": "u-admin", "email": "admin@bench.example.com", "password": "Bench-Admin-Pass-5820",
    "role": "account_admin", "department": "d-root",
}]
for i in range(n):
    u = {"id": f"u-{i:04d}", "email": f"user{i}@bench.example.com", "role": "user", "department": "d-root"}
    if HASH:
        u["password_hash"] = HASH
    else:
        u["password"] = "Bench-User-Pass-1234"
    users.append(u)
doc = {"accounts": [{
    "url": "http://bench.example.com", "name": "Bench",
    "policy": {"history": 0},
    "departments": [{"id": "d-root", "name": "Root", "children": []}],
    "users": users,
}]}
json.dump(doc, open(sys.argv[2], "w"))
