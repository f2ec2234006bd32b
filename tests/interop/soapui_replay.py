#!/usr/bin/env python3
"""Replays fixtures/soapui-project.xml the way SoapUI's test runner would: sends every test
step's request to the running service (demo data, fresh database) in order and evaluates the
step's assertions (SOAP Fault / Not SOAP Fault, XPath Match) on the response.

Stricter than SoapUI about the project itself: a step fails when it has no assertion, when
one of its assertions is of a type this replay cannot evaluate, and when it expects a fault
(SOAP Fault Assertion) but has no XPath Match on the fault's detail element (an element of
the service's namespace named *Fault).

Usage: soapui_replay.py http://127.0.0.1:PORT/soap [PROJECT]
(PROJECT defaults to fixtures/soapui-project.xml)
"""
import pathlib
import re
import sys
import urllib.error
import urllib.request

from lxml import etree

ROOT = pathlib.Path(__file__).resolve().parents[2]
CON = "{http://eviware.com/soapui/config}"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
API = "http://ispringlearn.com/go/services/api/soap"
KNOWN_ASSERTIONS = {"SOAP Fault Assertion", "Not SOAP Fault Assertion", "XPath Match"}


def post(endpoint, body):
    version12 = SOAP12 in body
    ctype = "application/soap+xml; charset=utf-8" if version12 else "text/xml; charset=utf-8"
    req = urllib.request.Request(endpoint, data=body.encode("utf-8"), headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def parse_xpath(config):
    """An XPath Match configuration's (namespaces, expression, expected content)."""
    path = config.findtext("path") or ""
    namespaces = dict(re.findall(r"declare namespace (\w+)='([^']+)';", path))
    expr = re.sub(r"declare namespace \w+='[^']+';", "", path).strip()
    return namespaces, expr, config.findtext("content")


def names_fault_detail(assertion):
    """Whether an XPath Match assertion's path names a fault detail element: an element of
    the service's namespace whose local name ends in Fault (e.g. api:WrongParametersFault)."""
    config = assertion.find(CON + "configuration")
    if assertion.get("type") != "XPath Match" or config is None:
        return False
    namespaces, expr, _ = parse_xpath(config)
    return any(namespaces.get(prefix) == API for prefix in re.findall(r"(\w+):\w+Fault\b", expr))


def project_problems(assertions):
    """What makes a step's assertions insufficient, whatever the response."""
    if not assertions:
        return ["the step has no assertion"]
    problems = [
        f"{a.get('name')}: assertion type {a.get('type')!r} is not evaluated by this replay"
        for a in assertions
        if a.get("type") not in KNOWN_ASSERTIONS
    ]
    expects_fault = any(a.get("type") == "SOAP Fault Assertion" for a in assertions)
    if expects_fault and not any(names_fault_detail(a) for a in assertions):
        problems.append("a fault is expected but no XPath Match asserts the fault's detail element")
    return problems


def xpath_match(doc, config):
    namespaces, expr, expected = parse_xpath(config)
    expr = re.sub(r"^exists\((.*)\)$", r"boolean(\1)", expr, flags=re.S)
    result = doc.xpath(expr, namespaces=namespaces)
    if isinstance(result, bool):
        got = "true" if result else "false"
    elif isinstance(result, list):
        got = result[0].text if result and hasattr(result[0], "text") else (str(result[0]) if result else None)
    else:
        got = str(result)
    return got == expected, got


def main(endpoint, project_path):
    project = etree.parse(str(project_path))
    passed = failed = 0
    for step in project.iter(CON + "testStep"):
        name = step.get("name")
        request = step.find(f"{CON}config/{CON}request")
        body = request.findtext(CON + "request")
        status, raw = post(endpoint, body)
        doc = etree.fromstring(raw)
        is_fault = bool(doc.xpath("//*[local-name()='Fault']"))
        assertions = list(request.iter(CON + "assertion"))
        problems = project_problems(assertions)
        for assertion in assertions:
            kind = assertion.get("type")
            if kind == "SOAP Fault Assertion" and not is_fault:
                problems.append("expected a fault")
            elif kind == "Not SOAP Fault Assertion" and is_fault:
                problems.append("unexpected fault")
            elif kind == "XPath Match":
                ok, got = xpath_match(doc, assertion.find(CON + "configuration"))
                if not ok:
                    problems.append(f"{assertion.get('name')}: got {got}")
        if problems:
            failed += 1
            print(f"FAIL {name} (HTTP {status}): {'; '.join(problems)}\n{raw.decode()[:600]}")
        else:
            passed += 1
            print(f"ok   {name} (HTTP {status})")
    print(f"soapui: {passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ROOT / "fixtures" / "soapui-project.xml"))
