#!/usr/bin/env python3
"""Interop check with Python zeep: load the WSDL from the running service's URL alone,
call UpdateUserPassword over the SOAP 1.1 and 1.2 bindings, and receive every typed fault
as zeep.exceptions.Fault whose detail names the fault type. After every call, the request
zeep sent (recorded by zeep.plugins.HistoryPlugin) must be in the binding's SOAP version:
envelope namespace and Content-Type; so must the answer's Content-Type, and a fault's code
(Client for 1.1, Sender for 1.2).

Usage: zeep_client.py http://127.0.0.1:PORT/soap   (the service must run with --demo data)
"""
import secrets
import sys

import zeep
from zeep.exceptions import Fault
from zeep.plugins import HistoryPlugin

API = "{http://ispringlearn.com/go/services/api/soap}"
ACCOUNT = "http://myaccount.ispringlearn.com"
OWNER = ("owner@example.com", "Owner-Demo-Pass-7341")
SALES_ADMIN = ("sales.admin@example.com", "Sales-Demo-Pass-2468")

# Per binding label: (envelope namespace, Content-Type media type, fault code's local name).
VERSIONS = {
    "SOAP 1.1": ("http://schemas.xmlsoap.org/soap/envelope/", "text/xml", "Client"),
    "SOAP 1.2": ("http://www.w3.org/2003/05/soap-envelope", "application/soap+xml", "Sender"),
}
history = HistoryPlugin()

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


def expect_fault(label, service, name, detail, args, extra=None):
    try:
        service.UpdateUserPassword(**args)
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


def main(endpoint):
    client = zeep.Client(endpoint + "?wsdl", plugins=[history])
    bindings = {
        "SOAP 1.1": client.bind("UserPasswordService", "UserPasswordSoap11"),
        "SOAP 1.2": client.bind("UserPasswordService", "UserPasswordSoap12"),
    }
    for label, service in bindings.items():
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
    print(f"zeep: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
