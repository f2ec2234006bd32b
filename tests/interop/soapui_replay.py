#!/usr/bin/env python3
"""Replays fixtures/soapui-project.xml the way SoapUI's test runner would: sends every test
step's request to the running service (demo data, fresh database) in order and evaluates the
step's assertions (SOAP Fault / Not SOAP Fault, XPath Match) on the response.

Usage: soapui_replay.py http://127.0.0.1:PORT/soap
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


def post(endpoint, body):
    version12 = SOAP12 in body
    ctype = "application/soap+xml; charset=utf-8" if version12 else "text/xml; charset=utf-8"
    req = urllib.request.Request(endpoint, data=body.encode("utf-8"), headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def xpath_match(doc, config):
    path = config.findtext("path")
    expected = config.findtext("content")
    namespaces = dict(re.findall(r"declare namespace (\w+)='([^']+)';", path))
    expr = re.sub(r"declare namespace \w+='[^']+';", "", path).strip()
    expr = re.sub(r"^exists\((.*)\)$", r"boolean(\1)", expr, flags=re.S)
    result = doc.xpath(expr, namespaces=namespaces)
    if isinstance(result, bool):
        got = "true" if result else "false"
    elif isinstance(result, list):
        got = result[0].text if result and hasattr(result[0], "text") else (str(result[0]) if result else None)
    else:
        got = str(result)
    return got == expected, got


def main(endpoint):
    project = etree.parse(str(ROOT / "fixtures" / "soapui-project.xml"))
    passed = failed = 0
    for step in project.iter(CON + "testStep"):
        name = step.get("name")
        request = step.find(f"{CON}config/{CON}request")
        body = request.findtext(CON + "request")
        status, raw = post(endpoint, body)
        doc = etree.fromstring(raw)
        is_fault = bool(doc.xpath("//*[local-name()='Fault']"))
        problems = []
        for assertion in request.iter(CON + "assertion"):
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
    sys.exit(main(sys.argv[1]))
