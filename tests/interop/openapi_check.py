#!/usr/bin/env python3
"""The REST/JSON twin's OpenAPI document (contract 13) against the running service.

What is checked:

* GET /api/openapi.json answers 200 with application/json, an OpenAPI 3.1 document that
  openapi-spec-validator finds valid (OpenAPIV31SpecValidator: every error is listed);
* hand-made calls of every operation, one per answer the document declares that can be
  provoked here (200, 400, 401, 403, 404, 413, 415; for PATCH also a self-change with
  currentPassword and no Authorization): each gets the expected status, and schemathesis
  validates the answer against the document (status declared, Content-Type, body schema):
  deterministic, so every operation's success body is checked whatever the fuzzing draws;
* a bounded schemathesis run against the running service, driven by that document as
  served: checks not_a_server_error (no 5xx) and response_schema_conformance (every
  answer whose status the document declares has a body that conforms to it). It
  authenticates as the demo's account admin (HTTP Basic admin@example.com, X-Account-Url
  of the demo account); userId (path and batch items) is drawn half the time from demo
  users, and new passwords half the time from strong ones, so that calls get past "Unknown
  user" and the policy (never u-admin itself, whose password must stay as it is). Fixed
  seed, so a failure reproduces; schemathesis prints a curl command for each failure;
* the run was meaningful: no request carrying the valid credentials was refused with 401
  (the status codes per operation are printed; an operation that got no 2xx is named, as a
  note, not a failure: the document lets most generated batches be rejected). (Fuzzing sends many
  requests refused before authentication, and each counts against the address throttle
  (contract 10): after 100 within 15 minutes, every call from the address is answered
  401, correctly. Start the server with --allow-address 127.0.0.1 so that the run is
  not throttled: pair lockouts still apply, and the run's own pair never fails.)

Usage:  openapi_check.py ENDPOINT_BASE [--max-examples N] [--seed N]
ENDPOINT_BASE is http://127.0.0.1:PORT (a trailing /soap is dropped). The server must run
with the demo directory on a fresh database and --allow-address 127.0.0.1; the run changes
passwords of demo users (u-learner2, u-trainer, u-engineer, u-help ...), so give it a
server of its own. Needs openapi-spec-validator and schemathesis
(tests/interop/requirements.txt). Exits 0 only when every check passes; the last line is
"N passed, M failed".
"""

import argparse
import base64
import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import requests
    import schemathesis
    from openapi_spec_validator import OpenAPIV31SpecValidator
except ImportError as e:  # pragma: no cover - depends on the caller's environment
    sys.exit(f"error: {e.name} is not installed (pip install -r tests/interop/requirements.txt)")

ACCOUNT = "http://myaccount.ispringlearn.com"
ADMIN = ("admin@example.com", "Admin-Demo-Pass-5820")
# Demo users a fuzzed userId is drawn from (half the time): every outcome of the account
# admin's calls: allowed, outranking (u-owner), deactivated, externally managed, unknown.
USERS = ["u-learner2", "u-trainer", "u-engineer", "u-help", "u-owner", "u-former", "u-sso", "u-nobody"]
CHECKS = "not_a_server_error,response_schema_conformance"
RUN_TIMEOUT = 240  # seconds: a hard stop for the whole schemathesis run
CONFIG = """\
# Written by tests/interop/openapi_check.py for one run.
[dictionaries.users]
values = %s

[dictionaries.passwords]
values = %s

[parameters]
"path.userId" = { dictionary = "users", probability = 0.5 }
"body.items[*].userId" = { dictionary = "users", probability = 0.5 }
"body.password" = { dictionary = "passwords", probability = 0.5 }
"body.items[*].password" = { dictionary = "passwords", probability = 0.5 }
"""
# Strong new passwords for the fuzzed calls (the policy's history makes some REUSED).
PASSWORDS = ["Fz-Openapi-Check-4417!", "Fz-Openapi-Check-5528?", "Fz-Openapi-Check-6639#",
             "Fz-Openapi-Check-7750%", "Fz-Openapi-Check-8861&", "Fz-Openapi-Check-9972*"]

passed = failed = 0


def check(name, ok, info=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name}{': ' + info if info else ''}")
    return ok


def fetch_document(base):
    url = base + "/api/openapi.json"
    try:
        resp = requests.get(url, timeout=30)
    except requests.RequestException as e:
        check(f"GET {url}", False, str(e))
        return None
    status, ctype, raw = resp.status_code, resp.headers.get("Content-Type", ""), resp.content
    media = ctype.split(";")[0].strip().lower()
    if not check(f"GET /api/openapi.json answers 200 application/json", status == 200 and media == "application/json",
                 f"HTTP {status} {ctype!r}"):
        return None
    try:
        document = json.loads(raw)
    except ValueError as e:
        check("the document is JSON", False, str(e))
        return None
    version = str(document.get("openapi", "")) if isinstance(document, dict) else ""
    check("the document is OpenAPI 3.1", version.startswith("3.1."), f"openapi is {version!r}")
    return document


def validate_document(document):
    errors = list(OpenAPIV31SpecValidator(document).iter_errors())
    lines = []
    for error in errors:
        where = "/".join(str(p) for p in getattr(error, "path", ()) or ())
        lines.append(f"{type(error).__name__}: {getattr(error, 'message', error)}" + (f" (at {where})" if where else ""))
    check("openapi-spec-validator: a valid OpenAPI 3.1 document", not errors,
          f"{len(errors)} error(s):\n      " + "\n      ".join(lines))


def operations_of(document):
    """Every (METHOD, path) the document declares."""
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    return sorted((m.upper(), path) for path, item in (document.get("paths") or {}).items()
                  for m in item if m in methods)


def failure_text(error):
    """A schemathesis validation failure (a FailureGroup of several, or one), one line each."""
    parts = getattr(error, "exceptions", None) or [error]
    return "; ".join(" ".join(str(p).split())[:400] for p in parts)


def hand_made_calls(base, document):
    """One call per answer the document declares that can be provoked here; each must get the
    expected status and an answer that conforms to the document."""
    schema = schemathesis.openapi.from_dict(document)
    admin = (ADMIN[0], ADMIN[1])
    account = {"X-Account-Url": ACCOUNT}
    wrong = ("nobody@example.com", "Nobody-Demo-Pass-0000")
    status_path, batch_path = "/api/users/{userId}/password", "/api/passwords"
    new = "Oa-Smoke-Check-Pass-%d!"
    big = {"items": [{"userId": "u-%06d" % n, "password": "x" * 300} for n in range(1000)]}
    calls = [
        # (name, METHOD, template, userId, kwargs for requests, expected status)
        ("status of u-learner2", "GET", status_path, "u-learner2", {"auth": admin}, 200),
        ("status, wrong credentials", "GET", status_path, "u-learner2", {"auth": wrong}, 401),
        ("status of u-owner (outranks)", "GET", status_path, "u-owner", {"auth": admin}, 403),
        ("status of u-nobody", "GET", status_path, "u-nobody", {"auth": admin}, 404),
        ("change of u-learner2", "PATCH", status_path, "u-learner2",
         {"auth": admin, "json": {"password": new % 1, "temporary": False}}, 200),
        ("self-change with currentPassword", "PATCH", status_path, "u-learner2",
         {"json": {"password": new % 2, "passwordConfirm": new % 2, "currentPassword": new % 1}}, 200),
        ("change breaking the policy", "PATCH", status_path, "u-learner2", {"auth": admin, "json": {"password": "short"}}, 400),
        ("change, wrong credentials", "PATCH", status_path, "u-learner2", {"auth": wrong, "json": {"password": new % 3}}, 401),
        ("change of u-sso (externally managed)", "PATCH", status_path, "u-sso", {"auth": admin, "json": {"password": new % 3}}, 403),
        ("change of u-nobody", "PATCH", status_path, "u-nobody", {"auth": admin, "json": {"password": new % 3}}, 404),
        ("change, body too large", "PATCH", status_path, "u-learner2", {"auth": admin, "json": {"password": "x" * 300_000}}, 413),
        ("change, not JSON", "PATCH", status_path, "u-learner2",
         {"auth": admin, "data": "password=x", "headers": {"Content-Type": "text/plain"}}, 415),
        ("mixed batch", "POST", batch_path, None, {"auth": admin, "json": {"items": [
            {"userId": "u-trainer", "password": new % 4, "temporary": True},
            {"userId": "u-owner", "password": new % 4},
            {"userId": "u-nobody", "password": new % 4},
            {"userId": "u-engineer", "password": "short"}]}}, 200),
        ("batch with a userId twice", "POST", batch_path, None, {"auth": admin, "json": {"items": [
            {"userId": "u-trainer", "password": new % 5}, {"userId": "u-trainer", "password": new % 6}]}}, 400),
        ("batch, wrong credentials", "POST", batch_path, None,
         {"auth": wrong, "json": {"items": [{"userId": "u-trainer", "password": new % 5}]}}, 401),
        ("batch, body too large", "POST", batch_path, None, {"auth": admin, "json": big}, 413),
        ("batch, not JSON", "POST", batch_path, None,
         {"auth": admin, "data": "items", "headers": {"Content-Type": "text/plain"}}, 415),
    ]
    for name, method, template, user, kwargs, want in calls:
        label = f"{method} {template}: {name}: HTTP {want}, conforms to the document"
        url = base + (template.replace("{userId}", user) if user else template)
        headers = {**account, **kwargs.pop("headers", {})}
        try:
            resp = requests.request(method, url, headers=headers, timeout=30, **kwargs)
        except requests.RequestException as e:
            check(label, False, f"{type(e).__name__}: {e}")
            continue
        problems = [] if resp.status_code == want else [f"HTTP {resp.status_code}"]
        try:
            schema[template][method].validate_response(resp)
        except (Exception, BaseExceptionGroup) as e:  # noqa: BLE001 - a FailureGroup or one failure
            problems.append(failure_text(e))
        check(label, not problems, "; ".join(problems) + f"\n      answer: {resp.text[:300]}")


def run_schemathesis(base, max_examples, seed, work):
    (work / "schemathesis.toml").write_text(CONFIG % (json.dumps(USERS), json.dumps(PASSWORDS)), encoding="utf-8")
    har = work / "run.har"
    args = [
        sys.executable, "-c",
        "import sys; from schemathesis.cli import schemathesis; sys.argv[0] = 'schemathesis'; sys.exit(schemathesis())",
        "--config-file", str(work / "schemathesis.toml"),
        "run", base + "/api/openapi.json",
        "--checks", CHECKS,
        "--max-examples", str(max_examples),
        "--seed", str(seed),
        "--generation-database", "none",
        "--auth", f"{ADMIN[0]}:{ADMIN[1]}",
        "--header", f"X-Account-Url: {ACCOUNT}",
        "--request-timeout", "20",
        "--no-color",
        # Unsanitized, so that the HAR report holds the Authorization sent (the demo's
        # credentials): how else tell the valid credentials refused from none sent.
        "--output-sanitize", "false",
        "--report", "har", "--report-har-path", str(har),
    ]
    print(f"running schemathesis ({CHECKS}; --max-examples {max_examples} --seed {seed}) ...", flush=True)
    try:
        proc = subprocess.run(args, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        out = e.stdout if isinstance(e.stdout, str) else (e.stdout or b"").decode(errors="replace")
        print(out)
        check("schemathesis run", False, f"did not finish within {RUN_TIMEOUT} s")
        return None
    print("\n".join("  | " + line for line in proc.stdout.rstrip().splitlines()))
    check("schemathesis: no 5xx, every documented response conforms, no schema error",
          proc.returncode == 0, f"schemathesis exited {proc.returncode} (its report is above)")
    return har if har.exists() else None


def summarise(har, document):
    """Per operation, the answers' status codes; whether the run reached the core logic."""
    entries = json.loads(har.read_text(encoding="utf-8"))["log"]["entries"]
    valid = "Basic " + base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()
    declared = operations_of(document)
    by_op = collections.defaultdict(collections.Counter)
    refused = 0
    for entry in entries:
        request, status = entry["request"], entry["response"]["status"]
        path = "/" + request["url"].split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
        op = next((o for o in declared if o[0] == request["method"] and matches(o[1], path)), None)
        by_op[op][status] += 1
        headers = {h["name"].lower(): h["value"] for h in request["headers"]}
        if status == 401 and headers.get("authorization") == valid:
            refused += 1
    print(f"{len(entries)} requests; status codes per operation:")
    for op in declared + [None]:
        if by_op.get(op):
            name = f"{op[0]} {op[1]}" if op else "(not in the document)"
            print(f"  {name}: " + ", ".join(f"{s}: {n}" for s, n in sorted(by_op[op].items())))
    no_success = [f"{m} {p}" for m, p in declared if not any(200 <= s < 300 for s in by_op[(m, p)])]
    if no_success:
        print("note: no 2xx answer in the fuzz run for " + ", ".join(no_success)
              + " (the hand-made calls above cover them)")
    check("no request with the valid credentials was refused 401", refused == 0,
          f"{refused} were: the address throttle or a lockout kicked in (start the server with "
          "--allow-address 127.0.0.1), and the rest of the run tested only the 401 answer")


def matches(template, path):
    """Whether a concrete path fits a path template such as /api/users/{userId}/password."""
    want, got = template.strip("/").split("/"), path.strip("/").split("/")
    return len(want) == len(got) and all(w.startswith("{") or w == g for w, g in zip(want, got))


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("endpoint_base", help="http://127.0.0.1:PORT (a trailing /soap is dropped)")
    parser.add_argument("--max-examples", type=int, default=100, help="test cases per operation and phase (100)")
    parser.add_argument("--seed", type=int, default=20261201, help="the run's random seed")
    args = parser.parse_args(argv[1:])
    base = args.endpoint_base.rstrip("/")
    base = base[: -len("/soap")] if base.endswith("/soap") else base

    document = fetch_document(base)
    if document is not None:
        validate_document(document)
        hand_made_calls(base, document)
        with tempfile.TemporaryDirectory(prefix="openapi-check-") as tmp:
            har = run_schemathesis(base, args.max_examples, args.seed, Path(tmp))
            if har is not None:
                summarise(har, document)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
