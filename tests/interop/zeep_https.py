#!/usr/bin/env python3
"""zeep over HTTPS (contract §16): load the WSDL from the https URL alone, trusting only
the CA in REQUESTS_CA_BUNDLE (requests, and so zeep, read it), and check that

* the WSDL's soap:address is the https URL it was fetched from, for both bindings;
* UpdateUserPassword over SOAP 1.1 succeeds (sales.admin sets u-learner's password);
* the same call over SOAP 1.2 with a wrong password raises the typed
  AuthenticationFailedFault;
* a client that does not trust the CA is refused by its certificate check.

Run by tests/api/tls.rs against `serve --demo --tls-cert … --tls-key …`.

Usage: REQUESTS_CA_BUNDLE=root.pem zeep_https.py https://localhost:PORT/soap
"""
import secrets
import sys

import requests
import zeep
from zeep.exceptions import Fault
from zeep.transports import Transport

API = "{http://ispringlearn.com/go/services/api/soap}"
ACCOUNT = "http://myaccount.ispringlearn.com"
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


def main(endpoint):
    client = zeep.Client(endpoint + "?wsdl")
    service = client.wsdl.services["UserPasswordService"]
    addresses = {name: port.binding_options["address"] for name, port in service.ports.items()}
    check(
        "the WSDL's soap:address is the https endpoint, for each binding",
        len(addresses) == 2 and all(a == endpoint for a in addresses.values()),
        str(addresses),
    )

    soap11 = client.bind("UserPasswordService", "UserPasswordSoap11")
    creds = {"accountUrl": ACCOUNT, "email": SALES_ADMIN[0], "password": SALES_ADMIN[1]}
    result = soap11.UpdateUserPassword(
        credentials=creds, userId="u-learner", password="Zh-" + secrets.token_urlsafe(12) + "-7!"
    )
    check("UpdateUserPassword over HTTPS (SOAP 1.1) succeeds", result is True, repr(result))

    soap12 = client.bind("UserPasswordService", "UserPasswordSoap12")
    try:
        soap12.UpdateUserPassword(
            credentials=dict(creds, password="wrong-" + secrets.token_hex(4)),
            userId="u-learner",
            password="Zh-" + secrets.token_urlsafe(12) + "-7!",
        )
        check("a wrong password over HTTPS (SOAP 1.2) is a fault", False, "no fault")
    except Fault as f:
        el = f.detail[0] if f.detail is not None and len(f.detail) else None
        check(
            "a wrong password over HTTPS (SOAP 1.2) is AuthenticationFailedFault",
            el is not None and el.tag == API + "AuthenticationFailedFault",
            getattr(el, "tag", None),
        )

    session = requests.Session()
    session.verify = True
    session.trust_env = False  # the system's roots only, not REQUESTS_CA_BUNDLE
    try:
        zeep.Client(endpoint + "?wsdl", transport=Transport(session=session))
        check("a client without the test CA is refused", False, "the WSDL loaded")
    except requests.exceptions.SSLError:
        check("a client without the test CA is refused", True)

    print(f"zeep over HTTPS: {passed} checks passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].startswith("https://"):
        sys.exit("usage: REQUESTS_CA_BUNDLE=root.pem zeep_https.py https://HOST:PORT/soap")
    sys.exit(main(sys.argv[1]))
