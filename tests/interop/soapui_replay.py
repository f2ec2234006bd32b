#!/usr/bin/env python3
"""Replays fixtures/soapui-project.xml the way SoapUI's test runner would: sends every test
step's request to the running service (demo data, fresh database) in order and evaluates the
step's assertions (SOAP Fault / Not SOAP Fault, XPath Match) on the response.

Stricter than SoapUI about the project itself: a step fails when it has no assertion, when
one of its assertions is of a type this replay cannot evaluate, when it expects a fault
(SOAP Fault Assertion) but has no XPath Match on the fault's detail element (an element of
the service's namespace named *Fault), when it expects no fault (Not SOAP Fault Assertion)
but has no XPath Match on its operation's result element (api:<operation>Result, e.g.
api:UpdateUserPasswordsResult), when it is an UpdateUserPasswords step without an XPath
Match on the success of each of its request's items (api:item[N]/api:success), when the
operation it names is not the one its request's Body calls (the request element
<operation>Request, or the operation's name sent in its place) or not an operation of its
interface, and when its interface's SOAP version is not its request's.

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
SOAP_VERSIONS = {"http://schemas.xmlsoap.org/soap/envelope/": "1_1", SOAP12: "1_2"}


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


def xpath_exprs(assertions):
    """The (namespaces, expression) of every XPath Match among assertions."""
    out = []
    for a in assertions:
        config = a.find(CON + "configuration")
        if a.get("type") == "XPath Match" and config is not None:
            namespaces, expr, _ = parse_xpath(config)
            out.append((namespaces, expr))
    return out


def names_api_element(exprs, local):
    """Whether one of the XPath expressions names {API}local (under whatever prefix)."""
    return any(
        namespaces.get(prefix) == API
        for namespaces, expr in exprs
        for prefix in re.findall(r"(\w+):" + re.escape(local) + r"\b", expr)
    )


def request_call(body):
    """(SOAP version as SoapUI spells it, operation, number of batch items) of a request: the
    operation is the Body's first element's name without Request (an operation's name sent
    in place of its request element is that operation)."""
    doc = etree.fromstring(body.encode("utf-8"))
    version = SOAP_VERSIONS.get(etree.QName(doc).namespace)
    payload = doc.xpath("./*[local-name()='Body']/*[1]")
    if not payload:
        return version, None, 0
    local = etree.QName(payload[0]).localname
    operation = local[: -len("Request")] if local.endswith("Request") else local
    items = len(payload[0].xpath("./*[local-name()='item']"))
    return version, operation, items


def interfaces_of(project):
    """Per interface name: (soapVersion, set of its operations' names)."""
    return {
        i.get("name"): (i.get("soapVersion"), {o.get("name") for o in i.iter(CON + "operation")})
        for i in project.iter(CON + "interface")
        if i.get("name")
    }


def step_problems(step, body, interfaces):
    """Whether the step names its request's operation, on an interface that has it, in the
    request's SOAP version."""
    config = step.find(CON + "config")
    interface = config.findtext(CON + "interface")
    named = config.findtext(CON + "operation")
    version, operation, _ = request_call(body)
    problems = []
    if named != operation:
        problems.append(f"the step names operation {named!r} but its request calls {operation!r}")
    if interface not in interfaces:
        problems.append(f"the step's interface {interface!r} is not in the project")
    else:
        soap_version, operations = interfaces[interface]
        if named not in operations:
            problems.append(f"interface {interface} has no operation {named!r}")
        if soap_version != version:
            problems.append(f"interface {interface} is SOAP {soap_version}, the request SOAP {version}")
    return problems


def project_problems(assertions, body=None):
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
    if body is None:
        return problems
    _, operation, items = request_call(body)
    exprs = xpath_exprs(assertions)
    expects_result = any(a.get("type") == "Not SOAP Fault Assertion" for a in assertions)
    if expects_result and operation and not names_api_element(exprs, f"{operation}Result"):
        problems.append(f"no fault is expected but no XPath Match asserts the {operation}Result element")
    if expects_result and operation == "UpdateUserPasswords":
        for n in range(1, items + 1):
            if not any(re.search(r"\w+:item\[%d\]/\w+:success\b" % n, expr) for _, expr in exprs):
                problems.append(f"no XPath Match asserts the success of item {n}")
    return problems


def xpath_match(doc, config):
    namespaces, expr, expected = parse_xpath(config)
    expr = re.sub(r"^exists\((.*)\)$", r"boolean(\1)", expr, flags=re.S)
    result = doc.xpath(expr, namespaces=namespaces)
    if isinstance(result, bool):
        got = "true" if result else "false"
    elif isinstance(result, float):
        # XPath numbers are doubles; SoapUI prints an integral one without a fraction.
        got = str(int(result)) if result.is_integer() else str(result)
    elif isinstance(result, list):
        got = result[0].text if result and hasattr(result[0], "text") else (str(result[0]) if result else None)
    else:
        got = str(result)
    return got == expected, got


def main(endpoint, project_path):
    project = etree.parse(str(project_path))
    interfaces = interfaces_of(project)
    passed = failed = 0
    for step in project.iter(CON + "testStep"):
        name = step.get("name")
        request = step.find(f"{CON}config/{CON}request")
        body = request.findtext(CON + "request")
        status, raw = post(endpoint, body)
        doc = etree.fromstring(raw)
        is_fault = bool(doc.xpath("//*[local-name()='Fault']"))
        assertions = list(request.iter(CON + "assertion"))
        problems = step_problems(step, body, interfaces) + project_problems(assertions, body)
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
