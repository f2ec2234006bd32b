#!/usr/bin/env python3
"""Interop check with Python zeep: load the WSDL from the running service's URL alone,
call every operation over the SOAP 1.1 and 1.2 bindings, and receive every typed fault
as zeep.exceptions.Fault whose detail names the fault type:

* UpdateUserPassword: a change, and its four typed client faults;
* UpdateUserPassword with temporary=True (contract 11.1), then GetUserPasswordStatus shows
  it (temporary True, credentialVersion one higher, passwordChangedAt a UTC datetime);
  the temporary user may read their own status but nobody else's (PermissionDeniedFault,
  PASSWORD_CHANGE_REQUIRED) and their self-change clears the flag;
* UpdateUserPasswords, a mixed batch: one result per item, in order, each failed item
  with its fault's type, code and extras; typed faults of the whole call
  (WrongParametersFault for a userId twice, AuthenticationFailedFault);
* GetUserPasswordStatus: the fields and their Python types (bool, int, datetime), a
  deactivated and an externally managed user, and its UnknownUserFault,
  PermissionDeniedFault and AuthenticationFailedFault;
* ResetUserPasswords: delivery=return for two named users (items in order, one link of
  the form ORIGIN/reset/TOKEN with expiresAt a UTC datetime, one PermissionDeniedFault
  item; the counts), the link spent over HTTP with requests (POST
  /api/password-resets/TOKEN: 200, then 410 on reuse); allInScope (notify: no link in the
  items, reset and skipped > 0); the typed WrongParametersFault of the whole call for
  userId with allInScope (sent past zeep's xs:choice by a plugin), a userId twice and
  allInScope with delivery=return;
* GET ?singleWsdl (the schema inlined, no xs:import) loads in zeep and serves a call.

After every call, the request zeep sent (recorded by zeep.plugins.HistoryPlugin) must be
in the binding's SOAP version: envelope namespace and Content-Type; so must the answer's
Content-Type, and a fault's code (Client for 1.1, Sender for 1.2).

Users (the demo directory, after the SoapUI replay): callers owner, admin and sales.admin
(never changed, never made temporary); changed: u-learner (as before), u-learner2 (made
temporary, then changes its own password), u-engineer (in the batch), u-trainer (its reset
link spent); reset callers sales.admin (u-trainer, u-engineer named) and emea.admin
(allInScope: a link for u-learner, whose next change kills it; never u-learner2, whose
status must show no pending reset); failed sign-ins only for owner (one per binding, as
before) and nobody@example.com (no such user).

Usage: zeep_client.py http://127.0.0.1:PORT/soap   (the service must run with --demo data)
"""
import datetime
import re
import secrets
import sys
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import requests
import zeep
from lxml import etree
from zeep.exceptions import Fault
from zeep.plugins import HistoryPlugin

API = "{http://ispringlearn.com/go/services/api/soap}"
ACCOUNT = "http://myaccount.ispringlearn.com"
OWNER = ("owner@example.com", "Owner-Demo-Pass-7341")
SALES_ADMIN = ("sales.admin@example.com", "Sales-Demo-Pass-2468")
ADMIN = ("admin@example.com", "Admin-Demo-Pass-5820")
NOBODY = ("nobody@example.com", "Nobody-Demo-Pass-0000")
EMEA_ADMIN = ("emea.admin@example.com", "Emea-Demo-Pass-1357")
XSD_NS = "http://www.w3.org/2001/XMLSchema"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"

# Per binding label: (envelope namespace, Content-Type media type, fault code's local name).
VERSIONS = {
    "SOAP 1.1": ("http://schemas.xmlsoap.org/soap/envelope/", "text/xml", "Client"),
    "SOAP 1.2": ("http://www.w3.org/2003/05/soap-envelope", "application/soap+xml", "Sender"),
}
history = HistoryPlugin()


class AddChild(zeep.Plugin):
    """Once armed, appends a child (name, text) to the operation element of the next
    request: what zeep's signature refuses, e.g. both branches of an xs:choice."""

    def __init__(self):
        self.child = None

    def egress(self, envelope, http_headers, operation, binding_options):
        if self.child is not None:
            name, text = self.child
            self.child = None
            body = envelope.find("{*}Body")
            etree.SubElement(body[0], API + name).text = text
        return envelope, http_headers


add_child = AddChild()

passed = failed = 0


def check(name, ok, info=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {info}")


def media_type(headers):
    value = next((v for k, v in (headers or {}).items() if k.lower() == "content-type"), "")
    return value.split(";")[0].strip().lower()


def check_version(name, label):
    """The call just made (the HistoryPlugin's last exchange) was in the binding's SOAP version.
    (A call that returned or raised a Fault has been sent, so the record is this call's.)"""
    namespace, media, _ = VERSIONS[label]
    sent, received = history.last_sent, history.last_received
    got = (
        sent["envelope"].tag if sent else None,
        media_type(sent["http_headers"]) if sent else None,
        media_type(received["http_headers"]) if received else None,
    )
    want = (f"{{{namespace}}}Envelope", media, media)
    check(f"{name}: sent and answered as {label}", got == want, f"got {got}, want {want}")


def new_password():
    return "Zp-" + secrets.token_urlsafe(12) + "-7!"


def creds(who):
    return {"accountUrl": ACCOUNT, "email": who[0], "password": who[1]}


def expect_fault(label, service, name, detail, args, extra=None, operation="UpdateUserPassword"):
    try:
        getattr(service, operation)(**args)
    except Fault as f:
        check_version(name, label)
        el = f.detail[0] if f.detail is not None and len(f.detail) else None
        got = el.tag if el is not None else None
        code = (f.code or "").rsplit(":", 1)[-1].rsplit("}", 1)[-1]
        ok = got == API + detail and code == VERSIONS[label][2]
        if ok and extra:
            for child, value in extra.items():
                texts = [c.text for c in el if c.tag == API + child]
                ok = ok and value in texts
        check(name, ok, f"detail={got} code={f.code!r} message={f.message!r}")
        return
    except Exception as e:  # noqa: BLE001 - anything else is a failure
        check(name, False, f"raised {type(e).__name__}: {e}")
        return
    check(name, False, "no fault raised")


def fault_texts(fault, child):
    """The texts of a batch item fault's child: a list for violation, else a 1-list."""
    value = getattr(fault, child, None)
    return list(value) if isinstance(value, list) else [value]


def check_status(name, result, user, **want):
    """A GetUserPasswordStatusResult: every field there with its Python type, and the wanted
    values. Returns the status, or None when it is not one."""
    types = {
        "userId": str, "status": str, "externallyManaged": bool, "passwordChangedAt": datetime.datetime,
        "temporary": bool, "credentialVersion": int, "resetPending": bool,
    }
    try:
        got = {field: getattr(result, field) for field in [*types, "lockedUntil"]}
    except AttributeError as e:
        check(name, False, f"not a status: {result!r} ({e})")
        return None
    bad = [f"{f}={got[f]!r} is not {t.__name__}" for f, t in types.items() if type(got[f]) is not t]
    changed_at = got["passwordChangedAt"]
    if isinstance(changed_at, datetime.datetime) and changed_at.utcoffset() != datetime.timedelta(0):
        bad.append(f"passwordChangedAt {changed_at!r} is not UTC")
    want = {"userId": user, "lockedUntil": None, "resetPending": False, **want}
    bad += [f"{f}={got[f]!r}, want {v!r}" for f, v in want.items() if got[f] != v]
    check(name, not bad, "; ".join(bad))
    return result


def temporary_and_status(label, service):
    """UpdateUserPassword temporary=True, seen by GetUserPasswordStatus; the temporary user
    may read only their own status, and their self-change clears the flag."""
    before = service.GetUserPasswordStatus(credentials=creds(ADMIN), userId="u-learner2")
    check_version(f"{label}: GetUserPasswordStatus", label)
    check_status(f"{label}: GetUserPasswordStatus fields and types", before, "u-learner2",
                 status="active", externallyManaged=False)
    temporary_password = new_password()
    result = service.UpdateUserPassword(
        credentials=creds(ADMIN), userId="u-learner2", password=temporary_password, temporary=True
    )
    check(f"{label}: temporary change", result is True, repr(result))
    check_version(f"{label}: temporary change", label)
    after = service.GetUserPasswordStatus(credentials=creds(ADMIN), userId="u-learner2")
    version = getattr(before, "credentialVersion", None)
    check_status(f"{label}: status after the temporary change", after, "u-learner2",
                 status="active", externallyManaged=False, temporary=True,
                 credentialVersion=version + 1 if isinstance(version, int) else "an int")
    if getattr(before, "passwordChangedAt", None) and getattr(after, "passwordChangedAt", None):
        check(f"{label}: passwordChangedAt moves on", after.passwordChangedAt >= before.passwordChangedAt,
              f"{before.passwordChangedAt} -> {after.passwordChangedAt}")
    learner2 = ("learner2@example.com", temporary_password)
    expect_fault(label, service, f"{label}: temporary caller reading another user's status: PermissionDeniedFault",
                 "PermissionDeniedFault", {"credentials": creds(learner2), "userId": "u-learner"},
                 {"reason": "PASSWORD_CHANGE_REQUIRED"}, operation="GetUserPasswordStatus")
    own = service.GetUserPasswordStatus(credentials=creds(learner2), userId="u-learner2")
    check_status(f"{label}: temporary caller reads their own status", own, "u-learner2",
                 status="active", externallyManaged=False, temporary=True)
    # A self-change is never temporary (temporary is ignored) and clears the flag.
    result = service.UpdateUserPassword(
        credentials=creds(learner2), userId="u-learner2", password=new_password(), temporary=True
    )
    check(f"{label}: self-change of a temporary password", result is True, repr(result))
    cleared = service.GetUserPasswordStatus(credentials=creds(ADMIN), userId="u-learner2")
    check_status(f"{label}: the self-change cleared temporary", cleared, "u-learner2",
                 status="active", externallyManaged=False, temporary=False,
                 credentialVersion=version + 2 if isinstance(version, int) else "an int")


def status_reads(label, service):
    check_status(f"{label}: status of a deactivated user", service.GetUserPasswordStatus(
        credentials=creds(ADMIN), userId="u-former"), "u-former", status="deactivated", externallyManaged=False)
    check_status(f"{label}: status of an externally managed user", service.GetUserPasswordStatus(
        credentials=creds(OWNER), userId="u-sso"), "u-sso", status="active", externallyManaged=True)
    check_version(f"{label}: GetUserPasswordStatus", label)
    expect_fault(label, service, f"{label}: GetUserPasswordStatus UnknownUserFault", "UnknownUserFault",
                 {"credentials": creds(ADMIN), "userId": "u-nobody"}, operation="GetUserPasswordStatus")
    expect_fault(label, service, f"{label}: GetUserPasswordStatus PermissionDeniedFault", "PermissionDeniedFault",
                 {"credentials": creds(SALES_ADMIN), "userId": "u-engineer"}, {"reason": "NOT_IN_SCOPE"},
                 operation="GetUserPasswordStatus")
    expect_fault(label, service, f"{label}: GetUserPasswordStatus AuthenticationFailedFault",
                 "AuthenticationFailedFault", {"credentials": creds(NOBODY), "userId": "u-learner"},
                 operation="GetUserPasswordStatus")


def batch(label, service):
    items = [
        {"userId": "u-engineer", "password": new_password()},
        {"userId": "u-owner", "password": new_password()},
        {"userId": "u-nobody", "password": new_password()},
        {"userId": "u-trainer", "password": "short"},
    ]
    password = new_password()  # for the whole-call faults: never applied
    items[0].update(passwordConfirm=items[0]["password"], temporary=False)
    result = service.UpdateUserPasswords(credentials=creds(ADMIN), item=items)
    check_version(f"{label}: UpdateUserPasswords", label)
    want = [
        ("u-engineer", True, None),
        ("u-owner", False, ("PermissionDeniedFault", "PERMISSION_DENIED", {"reason": "OUTRANKS_CALLER"})),
        ("u-nobody", False, ("UnknownUserFault", "UNKNOWN_USER", {})),
        ("u-trainer", False, ("WrongParametersFault", "WRONG_PARAMETERS",
                              {"parameter": "password", "violation": "TOO_SHORT"})),
    ]
    got = list(result) if isinstance(result, list) else []
    check(f"{label}: UpdateUserPasswords answers one item per request item",
          len(got) == len(want), repr(result))
    for n, (item, (user, success, fault)) in enumerate(zip(got, want), start=1):
        problems = []
        if item.userId != user or item.success is not success:
            problems.append(f"userId={item.userId!r} success={item.success!r}")
        if fault is None:
            if item.fault is not None:
                problems.append(f"unexpected fault {item.fault!r}")
        elif item.fault is None:
            problems.append("no fault")
        else:
            kind, code, extras = fault
            if item.fault.type != kind or item.fault.code != code or not item.fault.message:
                problems.append(f"type={item.fault.type!r} code={item.fault.code!r} message={item.fault.message!r}")
            for child, value in extras.items():
                if value not in fault_texts(item.fault, child):
                    problems.append(f"{child}={getattr(item.fault, child, None)!r}, want {value!r}")
        check(f"{label}: batch item {n} ({user}: {fault[0] if fault else 'success'})", not problems,
              "; ".join(problems))
    expect_fault(label, service, f"{label}: UpdateUserPasswords WrongParametersFault (a userId twice)",
                 "WrongParametersFault",
                 {"credentials": creds(ADMIN), "item": [{"userId": "u-engineer", "password": password},
                                                        {"userId": "u-engineer", "password": new_password()}]},
                 {"parameter": "item/userId"}, operation="UpdateUserPasswords")
    expect_fault(label, service, f"{label}: UpdateUserPasswords AuthenticationFailedFault",
                 "AuthenticationFailedFault",
                 {"credentials": creds(NOBODY), "item": [{"userId": "u-engineer", "password": password}]},
                 operation="UpdateUserPasswords")


def resets(label, service, endpoint):
    """ResetUserPasswords: delivery=return for named users (a link spent over HTTP),
    allInScope with notify, and the typed faults of the whole call."""
    parts = urllib.parse.urlsplit(endpoint)
    origin = f"{parts.scheme}://{parts.netloc}"
    result = service.ResetUserPasswords(
        credentials=creds(SALES_ADMIN), userId=["u-trainer", "u-engineer"], delivery="return"
    )
    check_version(f"{label}: ResetUserPasswords", label)
    items = list(getattr(result, "item", None) or [])
    check(f"{label}: ResetUserPasswords (return) answers one item per named user, in order",
          [getattr(i, "userId", None) for i in items] == ["u-trainer", "u-engineer"], repr(result))
    check(f"{label}: ResetUserPasswords (return) counts reset=1 skipped=1",
          type(getattr(result, "reset", None)) is int and (result.reset, result.skipped) == (1, 1),
          f"reset={getattr(result, 'reset', None)!r} skipped={getattr(result, 'skipped', None)!r}")
    link = None
    if items:
        item, problems = items[0], []
        if item.success is not True or item.fault is not None:
            problems.append(f"success={item.success!r} fault={item.fault!r}")
        if not isinstance(item.link, str) or not re.fullmatch(re.escape(origin) + r"/reset/[A-Za-z0-9_-]{20,}",
                                                              item.link):
            problems.append(f"link={item.link!r} is not {origin}/reset/TOKEN")
        else:
            link = item.link
        expires = item.expiresAt
        now = datetime.datetime.now(datetime.timezone.utc)
        if not isinstance(expires, datetime.datetime) or expires.utcoffset() != datetime.timedelta(0):
            problems.append(f"expiresAt={expires!r} is not a UTC datetime")
        elif expires <= now:
            problems.append(f"expiresAt={expires} is not after {now}")
        check(f"{label}: reset item 1 (u-trainer: a link, expiresAt a datetime)", not problems, "; ".join(problems))
    if len(items) > 1:
        item, problems = items[1], []
        if item.success is not False or item.link is not None or item.expiresAt is not None:
            problems.append(f"success={item.success!r} link={item.link!r} expiresAt={item.expiresAt!r}")
        fault = item.fault
        if fault is None:
            problems.append("no fault")
        elif (fault.type, fault.code, fault.reason) != ("PermissionDeniedFault", "PERMISSION_DENIED", "NOT_IN_SCOPE") \
                or not fault.message:
            problems.append(f"fault type={fault.type!r} code={fault.code!r} reason={fault.reason!r} message={fault.message!r}")
        check(f"{label}: reset item 2 (u-engineer: PermissionDeniedFault NOT_IN_SCOPE, no link)", not problems,
              "; ".join(problems))
    if link is not None:
        # The link is spent as an LMS hosting its own form would: u-trainer's password
        # changes (no later stage signs in as u-trainer); a second use is refused.
        api = origin + "/api/password-resets/" + link.rsplit("/", 1)[1]
        answer = requests.post(api, json={"password": new_password()}, timeout=30)
        body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else None
        check(f"{label}: the returned link spent over HTTP: 200 {{\"success\":true}}",
              answer.status_code == 200 and body == {"success": True}, f"{answer.status_code} {answer.text!r}")
        again = requests.post(api, json={"password": new_password()}, timeout=30)
        check(f"{label}: the spent link used again: 410", again.status_code == 410,
              f"{again.status_code} {again.text!r}")
    # allInScope (delivery notify, the default): the d-emea admin's reach is u-learner (a
    # link, sent to the user) and u-trainer, u-former, u-sso (skipped); items only for the skipped.
    result = service.ResetUserPasswords(credentials=creds(EMEA_ADMIN), allInScope=True)
    check_version(f"{label}: ResetUserPasswords allInScope", label)
    items = list(getattr(result, "item", None) or [])
    reset, skipped = getattr(result, "reset", None), getattr(result, "skipped", None)
    problems = [f"{i.userId}: link {i.link!r}" for i in items if i.link is not None]
    problems += [f"{i.userId}: success={i.success!r} fault={i.fault!r}" for i in items
                 if i.success is not False or i.fault is None or i.fault.type != "PermissionDeniedFault"]
    if not (isinstance(reset, int) and isinstance(skipped, int) and reset > 0 and skipped > 0 and skipped == len(items)):
        problems.append(f"reset={reset!r} skipped={skipped!r} with {len(items)} items")
    check(f"{label}: ResetUserPasswords allInScope (notify): no link, only skipped items, counts > 0",
          not problems, "; ".join(problems) or repr(result))
    # Whole-call faults (decided before anyone is reset).
    add_child.child = ("allInScope", "true")
    try:
        expect_fault(label, service, f"{label}: ResetUserPasswords WrongParametersFault (userId and allInScope)",
                     "WrongParametersFault", {"credentials": creds(EMEA_ADMIN), "userId": ["u-learner"]},
                     {"parameter": "userId"}, operation="ResetUserPasswords")
        sent = history.last_sent["envelope"] if history.last_sent else None
        check(f"{label}: that request held both userId and allInScope",
              sent is not None and sent.find(f".//{API}userId") is not None
              and sent.find(f".//{API}allInScope") is not None,
              etree.tostring(sent).decode() if sent is not None else "nothing sent")
    finally:
        add_child.child = None
    expect_fault(label, service, f"{label}: ResetUserPasswords WrongParametersFault (a userId twice)",
                 "WrongParametersFault",
                 {"credentials": creds(EMEA_ADMIN), "userId": ["u-learner", "u-learner"], "delivery": "return"},
                 {"parameter": "userId"}, operation="ResetUserPasswords")
    expect_fault(label, service, f"{label}: ResetUserPasswords WrongParametersFault (allInScope, delivery=return)",
                 "WrongParametersFault",
                 {"credentials": creds(EMEA_ADMIN), "allInScope": True, "delivery": "return"},
                 {"parameter": "delivery"}, operation="ResetUserPasswords")


def single_wsdl(endpoint):
    """?singleWsdl: the schema inlined (no xs:import), and zeep makes a call through it."""
    with urllib.request.urlopen(endpoint + "?singleWsdl") as resp:
        root = ET.fromstring(resp.read())
    schemas = root.findall(f"{{{WSDL_NS}}}types/{{{XSD_NS}}}schema")
    imports = root.findall(f".//{{{XSD_NS}}}import") + root.findall(f".//{{{XSD_NS}}}include")
    declared = {e.get("name") for s in schemas for e in s.findall(f"{{{XSD_NS}}}element")}
    want = {"UpdateUserPasswordRequest", "UpdateUserPasswordsRequest", "GetUserPasswordStatusRequest",
            "ResetUserPasswordsRequest"}
    check("singleWsdl: the schema inlined, no xs:import",
          len(schemas) == 1 and schemas[0].get("targetNamespace") == API[1:-1] and not imports
          and want <= declared, f"{len(schemas)} schemas, {len(imports)} imports, elements {sorted(declared)}")
    client = zeep.Client(endpoint + "?singleWsdl", plugins=[history])
    for label, port in (("SOAP 1.1", "UserPasswordSoap11"), ("SOAP 1.2", "UserPasswordSoap12")):
        service = client.bind("UserPasswordService", port)
        status = service.GetUserPasswordStatus(credentials=creds(OWNER), userId="u-sso")
        check_version(f"singleWsdl {label}: GetUserPasswordStatus", label)
        check_status(f"singleWsdl {label}: GetUserPasswordStatus", status, "u-sso",
                     status="active", externallyManaged=True)


def main(endpoint):
    client = zeep.Client(endpoint + "?wsdl", plugins=[add_child, history])
    bindings = {
        "SOAP 1.1": client.bind("UserPasswordService", "UserPasswordSoap11"),
        "SOAP 1.2": client.bind("UserPasswordService", "UserPasswordSoap12"),
    }
    for label, service in bindings.items():
        update_password(label, service)
        for part in (temporary_and_status, status_reads, batch):
            try:
                part(label, service)
            except Exception as e:  # noqa: BLE001 - an unexpected fault or error fails the part
                check(f"{label}: {part.__name__}", False, f"raised {type(e).__name__}: {e}")
        try:
            resets(label, service, endpoint)
        except Exception as e:  # noqa: BLE001
            check(f"{label}: resets", False, f"raised {type(e).__name__}: {e}")
    try:
        single_wsdl(endpoint)
    except Exception as e:  # noqa: BLE001
        check("singleWsdl", False, f"raised {type(e).__name__}: {e}")
    print(f"zeep: {passed} passed, {failed} failed")
    return 1 if failed else 0


def update_password(label, service):
    result = service.UpdateUserPassword(
        credentials=creds(SALES_ADMIN), userId="u-learner", password=new_password()
    )
    check(f"{label}: success", result is True or getattr(result, "success", None) is True, repr(result))
    check_version(f"{label}: success", label)
    expect_fault(
        label,
        service,
        f"{label}: WrongParametersFault",
        "WrongParametersFault",
        {"credentials": creds(OWNER), "userId": "u-learner", "password": "short"},
        {"parameter": "password", "violation": "TOO_SHORT"},
    )
    expect_fault(
        label,
        service,
        f"{label}: AuthenticationFailedFault",
        "AuthenticationFailedFault",
        {"credentials": creds((OWNER[0], "wrong-password-123")), "userId": "u-learner", "password": new_password()},
    )
    expect_fault(
        label,
        service,
        f"{label}: UnknownUserFault",
        "UnknownUserFault",
        {"credentials": creds(OWNER), "userId": "u-nobody", "password": new_password()},
    )
    expect_fault(
        label,
        service,
        f"{label}: PermissionDeniedFault",
        "PermissionDeniedFault",
        {"credentials": creds(SALES_ADMIN), "userId": "u-engineer", "password": new_password()},
        {"reason": "NOT_IN_SCOPE"},
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
