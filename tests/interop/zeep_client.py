#!/usr/bin/env python3
"""Interop check with Python zeep: load the WSDL from the running service's URL alone,
call UpdateUserPassword over the SOAP 1.1 and 1.2 bindings, and receive every typed fault
as zeep.exceptions.Fault whose detail names the fault type.

Usage: zeep_client.py http://127.0.0.1:PORT/soap   (the service must run with --demo data)
"""
import secrets
import sys

import zeep
from zeep.exceptions import Fault

API = "{http://ispringlearn.com/go/services/api/soap}"
ACCOUNT = "http://myaccount.ispringlearn.com"
OWNER = ("owner@example.com", "Owner-Demo-Pass-7341")
SALES_ADMIN = ("sales.admin@example.com", "Sales-Demo-Pass-2468")

passed = failed = 0


def check(name, ok, info=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {info}")


def new_password():
    return "Zp-" + secrets.token_urlsafe(12) + "-7!"


def creds(who):
    return {"accountUrl": ACCOUNT, "email": who[0], "password": who[1]}


def expect_fault(service, name, detail, args, extra=None):
    try:
        service.UpdateUserPassword(**args)
    except Fault as f:
        el = f.detail[0] if f.detail is not None and len(f.detail) else None
        got = el.tag if el is not None else None
        ok = got == API + detail
        if ok and extra:
            for child, value in extra.items():
                texts = [c.text for c in el if c.tag == API + child]
                ok = ok and value in texts
        check(name, ok, f"detail={got} message={f.message!r}")
        return
    except Exception as e:  # noqa: BLE001 - anything else is a failure
        check(name, False, f"raised {type(e).__name__}: {e}")
        return
    check(name, False, "no fault raised")


def main(endpoint):
    client = zeep.Client(endpoint + "?wsdl")
    bindings = {
        "SOAP 1.1": client.bind("UserPasswordService", "UserPasswordSoap11"),
        "SOAP 1.2": client.bind("UserPasswordService", "UserPasswordSoap12"),
    }
    for label, service in bindings.items():
        result = service.UpdateUserPassword(
            credentials=creds(SALES_ADMIN), userId="u-learner", password=new_password()
        )
        check(f"{label}: success", result is True or getattr(result, "success", None) is True, repr(result))
        expect_fault(
            service,
            f"{label}: WrongParametersFault",
            "WrongParametersFault",
            {"credentials": creds(OWNER), "userId": "u-learner", "password": "short"},
            {"parameter": "password", "violation": "TOO_SHORT"},
        )
        expect_fault(
            service,
            f"{label}: AuthenticationFailedFault",
            "AuthenticationFailedFault",
            {"credentials": creds((OWNER[0], "wrong-password-123")), "userId": "u-learner", "password": new_password()},
        )
        expect_fault(
            service,
            f"{label}: UnknownUserFault",
            "UnknownUserFault",
            {"credentials": creds(OWNER), "userId": "u-nobody", "password": new_password()},
        )
        expect_fault(
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
