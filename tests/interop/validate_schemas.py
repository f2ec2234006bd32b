#!/usr/bin/env python3
"""Validate the published schema, the WSDL and every SOAP fixture against each other.

What is checked:

* schemas/soap-passwd.xsd is a valid XML Schema 1.0 document;
* wsdl/soap-passwd.wsdl imports that schema through the relative schemaLocation
  that the server rewrites (exactly once), the imported schema loads from the
  WSDL's own location, every message part names one of its global elements,
  and both bindings declare the operation's five faults as literal;
* for every file in fixtures/requests and fixtures/responses: the SOAP envelope
  is well-shaped (SOAP 1.1 or 1.2, one payload element in the Body, faults with
  the contract's faultcode/faultstring), and the payload -- the Body's first
  child, or for a fault the element inside detail / env:Detail -- is valid
  against the XSD, both as loaded directly and as imported by the WSDL.

Some fixtures are deliberately not schema-valid (see EXPECTED_INVALID); for
those the check is that validation *fails*. Fixtures in UNQUALIFIED are sent in
the JAX-WS style the service accepts but the published schema does not: their
raw payload must fail, and must pass once the unqualified descendants are put
in the target namespace (which is what the service does).

Usage:  python3 tests/interop/validate_schemas.py [REPO_ROOT]
Needs the `xmlschema` package (pip install xmlschema). Exits 0 only when every
check passes; the last line is "N passed, M failed".
"""

import copy
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

try:
    import xmlschema
except ImportError:  # pragma: no cover - depends on the caller's environment
    sys.exit("error: the 'xmlschema' package is not installed (pip install xmlschema)")

API_NS = "http://ispringlearn.com/go/services/api/soap"
SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP11_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
WSDL_SOAP12_NS = "http://schemas.xmlsoap.org/wsdl/soap12/"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
XML_NS = "http://www.w3.org/XML/1998/namespace"

# Literals of the WSDL that the server rewrites when it serves the document.
XSD_LOCATION_LITERAL = "../schemas/soap-passwd.xsd"
ADDRESS_LITERAL = "http://localhost:8080/soap"

# Fixtures (relative to fixtures/) whose payload must FAIL schema validation.
EXPECTED_INVALID = {
    "requests/wrong-parameters.xml",  # userId is missing on purpose
}

# Fixtures whose payload has unqualified descendants (JAX-WS / CXF style).
UNQUALIFIED = {
    "requests/unqualified-children.xml",
}

# Per fault detail element: (SOAP 1.1 faultcode, SOAP 1.2 Code/Value, faultstring).
FAULTS = {
    "WrongParametersFault": ("Client", "Sender", "Wrong parameters"),
    "AuthenticationFailedFault": ("Client", "Sender", "Authorization failed"),
    "UnknownUserFault": ("Client", "Sender", "Unknown user"),
    "PermissionDeniedFault": ("Client", "Sender", "Permission denied"),
    "ServerBusyFault": ("Server", "Receiver", "Server busy"),
}


class CheckFailed(Exception):
    """A check's failure, with a message for humans."""


def q(ns, local):
    """Clark notation {ns}local, as ElementTree spells qualified names."""
    return "{%s}%s" % (ns, local)


def local_name(tag):
    return tag.rsplit("}", 1)[-1]


def namespace_of(tag):
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def element_children(elem):
    # ElementTree drops comments by default, so every child is an element.
    return list(elem)


def parse_with_prefixes(path):
    """Parse a file; return (root, {prefix: namespace}) over all declarations.

    Fixtures bind each prefix once, so a flat map is enough to resolve the
    QName values of faultcode / env:Value.
    """
    prefixes = {}
    for _event, (prefix, uri) in ET.iterparse(str(path), events=("start-ns",)):
        prefixes.setdefault(prefix, uri)
    return ET.parse(str(path)).getroot(), prefixes


def resolve_qname(text, prefixes, what):
    text = (text or "").strip()
    if ":" not in text:
        raise CheckFailed("%s %r is not a qualified name" % (what, text))
    prefix, local = text.split(":", 1)
    if prefix not in prefixes:
        raise CheckFailed("%s %r uses an undeclared prefix" % (what, text))
    return prefixes[prefix], local


def schema_errors(schema, elem):
    """All validation errors of elem against schema, one line each."""
    return ["%s (at %s)" % (err.reason, err.path) for err in schema.iter_errors(elem)]


def qualify_descendants(payload):
    """Copy of payload with every no-namespace descendant moved into API_NS."""
    fixed = copy.deepcopy(payload)
    for elem in fixed.iter():
        if not elem.tag.startswith("{"):
            elem.tag = q(API_NS, elem.tag)
    return fixed


# --------------------------------------------------------------------------
# Schema and WSDL checks
# --------------------------------------------------------------------------

def load_xsd(xsd_path):
    schema = xmlschema.XMLSchema10(str(xsd_path))
    if schema.target_namespace != API_NS:
        raise CheckFailed("targetNamespace is %r" % schema.target_namespace)
    expected = {"UpdateUserPasswordRequest", "UpdateUserPasswordResult", *FAULTS}
    found = {local_name(name) for name in schema.elements}
    if found != expected:
        raise CheckFailed("global elements are %s, expected %s" % (sorted(found), sorted(expected)))
    return schema


def load_wsdl_schema(wsdl_path, xsd_path):
    text = wsdl_path.read_text(encoding="utf-8")
    if text.count(XSD_LOCATION_LITERAL) != 1:
        raise CheckFailed("%r must occur exactly once, found %d"
                          % (XSD_LOCATION_LITERAL, text.count(XSD_LOCATION_LITERAL)))

    root = ET.parse(str(wsdl_path)).getroot()
    schemas = root.findall("%s/%s" % (q(WSDL_NS, "types"), q(XSD_NS, "schema")))
    if len(schemas) != 1:
        raise CheckFailed("wsdl:types must hold exactly one xs:schema, found %d" % len(schemas))
    wrapper = schemas[0]
    imports = wrapper.findall(q(XSD_NS, "import"))
    if len(imports) != 1 or len(wrapper) != 1:
        raise CheckFailed("the types schema must hold a single xs:import and nothing else")
    imp = imports[0]
    if imp.get("namespace") != API_NS or imp.get("schemaLocation") != XSD_LOCATION_LITERAL:
        raise CheckFailed("unexpected xs:import %r" % imp.attrib)
    if (wsdl_path.parent / XSD_LOCATION_LITERAL).resolve() != xsd_path.resolve():
        raise CheckFailed("schemaLocation does not point at %s" % xsd_path)

    # Build the wrapper schema as a WSDL consumer would: relative to the WSDL.
    base_url = wsdl_path.parent.resolve().as_uri() + "/"
    schema = xmlschema.XMLSchema10(wrapper, base_url=base_url)
    if q(API_NS, "UpdateUserPasswordRequest") not in schema.maps.elements:
        raise CheckFailed("the imported schema did not load")
    return schema, root


def check_wsdl_structure(root, schema):
    tns = root.get("targetNamespace")
    messages = {m.get("name"): m for m in root.findall(q(WSDL_NS, "message"))}

    # Every part names a global element of the imported schema.
    for name, message in messages.items():
        parts = message.findall(q(WSDL_NS, "part"))
        if len(parts) != 1:
            raise CheckFailed("message %s must have exactly one part" % name)
        prefix, _, local = parts[0].get("element", "").partition(":")
        if prefix != "tns" or q(API_NS, local) not in schema.maps.elements:
            raise CheckFailed("message %s names unknown element %r" % (name, parts[0].get("element")))

    # The portType's operation uses the expected messages.
    ops = root.findall("%s/%s" % (q(WSDL_NS, "portType"), q(WSDL_NS, "operation")))
    if len(ops) != 1 or ops[0].get("name") != "UpdateUserPassword":
        raise CheckFailed("portType must declare the single operation UpdateUserPassword")
    fault_names = {f.get("name") for f in ops[0].findall(q(WSDL_NS, "fault"))}
    if fault_names != set(FAULTS):
        raise CheckFailed("portType faults are %s" % sorted(fault_names))
    for f in ops[0].findall(q(WSDL_NS, "fault")):
        if f.get("message") != "tns:" + f.get("name") or f.get("name") not in messages:
            raise CheckFailed("portType fault %s has message %r" % (f.get("name"), f.get("message")))

    # Both bindings: document style, HTTP transport, literal bodies and faults.
    for binding_name, ns in (("UserPasswordSoap11Binding", WSDL_SOAP11_NS),
                             ("UserPasswordSoap12Binding", WSDL_SOAP12_NS)):
        binding = root.find("%s[@name='%s']" % (q(WSDL_NS, "binding"), binding_name))
        if binding is None:
            raise CheckFailed("binding %s is missing" % binding_name)
        sb = binding.find(q(ns, "binding"))
        if sb is None or sb.get("style") != "document" \
                or sb.get("transport") != "http://schemas.xmlsoap.org/soap/http":
            raise CheckFailed("binding %s: bad soap binding element" % binding_name)
        op = binding.find(q(WSDL_NS, "operation"))
        if op.find(q(ns, "operation")).get("soapAction") != "UpdateUserPassword":
            raise CheckFailed("binding %s: soapAction must be UpdateUserPassword" % binding_name)
        for direction in ("input", "output"):
            body = op.find("%s/%s" % (q(WSDL_NS, direction), q(ns, "body")))
            if body is None or body.get("use") != "literal":
                raise CheckFailed("binding %s: %s body must be literal" % (binding_name, direction))
        bound = {}
        for f in op.findall(q(WSDL_NS, "fault")):
            sf = f.find(q(ns, "fault"))
            if sf is None or sf.get("use") != "literal" or sf.get("name") != f.get("name"):
                raise CheckFailed("binding %s: fault %s must be literal and named"
                                  % (binding_name, f.get("name")))
            bound[f.get("name")] = sf
        if set(bound) != set(FAULTS):
            raise CheckFailed("binding %s binds faults %s" % (binding_name, sorted(bound)))

    # Service and ports: both at the literal address the server rewrites.
    ports = root.findall("%s/%s" % (q(WSDL_NS, "service"), q(WSDL_NS, "port")))
    by_name = {p.get("name"): p for p in ports}
    for port_name, ns in (("UserPasswordSoap11", WSDL_SOAP11_NS),
                          ("UserPasswordSoap12", WSDL_SOAP12_NS)):
        port = by_name.get(port_name)
        address = None if port is None else port.find(q(ns, "address"))
        if address is None or address.get("location") != ADDRESS_LITERAL:
            raise CheckFailed("port %s must have address %s" % (port_name, ADDRESS_LITERAL))
    if tns != API_NS:
        raise CheckFailed("WSDL targetNamespace is %r" % tns)


# --------------------------------------------------------------------------
# Fixture checks
# --------------------------------------------------------------------------

def extract_payload(path, kind):
    """Check the envelope's shape and return its payload element."""
    root, prefixes = parse_with_prefixes(path)
    env_ns = namespace_of(root.tag)
    if local_name(root.tag) != "Envelope" or env_ns not in (SOAP11_NS, SOAP12_NS):
        raise CheckFailed("root is %s, not a SOAP 1.1 or 1.2 Envelope" % root.tag)
    want_12 = "soap12" in path.name
    if want_12 != (env_ns == SOAP12_NS):
        raise CheckFailed("file name and envelope disagree on the SOAP version")

    bodies = root.findall(q(env_ns, "Body"))
    if len(bodies) != 1:
        raise CheckFailed("expected one Body, found %d" % len(bodies))
    children = element_children(bodies[0])
    if len(children) != 1:
        raise CheckFailed("the Body must hold exactly one element, found %d" % len(children))
    first = children[0]

    if kind == "requests":
        if first.tag != q(API_NS, "UpdateUserPasswordRequest"):
            raise CheckFailed("request payload is %s" % first.tag)
        return first
    if first.tag == q(API_NS, "UpdateUserPasswordResult"):
        return first
    if first.tag != q(env_ns, "Fault"):
        raise CheckFailed("response payload is %s" % first.tag)
    return extract_fault_detail(first, env_ns, prefixes)


def extract_fault_detail(fault, env_ns, prefixes):
    if env_ns == SOAP11_NS:
        detail = fault.find("detail")
        code_elem, reason_elem = fault.find("faultcode"), fault.find("faultstring")
    else:
        detail = fault.find(q(env_ns, "Detail"))
        code_elem = fault.find("%s/%s" % (q(env_ns, "Code"), q(env_ns, "Value")))
        reason_elem = fault.find("%s/%s" % (q(env_ns, "Reason"), q(env_ns, "Text")))
        if reason_elem is not None and not reason_elem.get(q(XML_NS, "lang")):
            raise CheckFailed("env:Reason/env:Text lacks xml:lang")
    if detail is None or code_elem is None or reason_elem is None:
        raise CheckFailed("fault lacks its code, reason or detail")

    items = element_children(detail)
    if len(items) != 1 or namespace_of(items[0].tag) != API_NS:
        raise CheckFailed("the fault detail must hold exactly one element in the api namespace")
    detail_elem = items[0]
    expected = FAULTS.get(local_name(detail_elem.tag))
    if expected is None:
        raise CheckFailed("unknown fault detail element %s" % detail_elem.tag)

    code_ns, code_local = resolve_qname(code_elem.text, prefixes, "fault code")
    want_code = expected[0] if env_ns == SOAP11_NS else expected[1]
    if (code_ns, code_local) != (env_ns, want_code):
        raise CheckFailed("fault code is {%s}%s, expected {%s}%s"
                          % (code_ns, code_local, env_ns, want_code))
    if (reason_elem.text or "") != expected[2]:
        raise CheckFailed("fault string is %r, expected %r" % (reason_elem.text, expected[2]))
    return detail_elem


def check_fixture(path, rel, kind, schemas):
    payload = extract_payload(path, kind)
    errors = [e for s in schemas for e in schema_errors(s, payload)]

    if rel in EXPECTED_INVALID:
        if not errors:
            raise CheckFailed("expected to FAIL schema validation, but it is valid")
        return "fails validation as expected: %s" % errors[0]

    if rel in UNQUALIFIED:
        if not errors:
            raise CheckFailed("unqualified children unexpectedly valid against the qualified XSD")
        payload = qualify_descendants(payload)
        errors = [e for s in schemas for e in schema_errors(s, payload)]
        if errors:
            raise CheckFailed("invalid even once qualified:\n      " + "\n      ".join(errors))
        return "valid once its unqualified children are qualified"

    if errors:
        raise CheckFailed("schema validation failed:\n      " + "\n      ".join(errors))
    return "valid %s" % local_name(payload.tag)


# --------------------------------------------------------------------------

def main(argv):
    repo = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[2]
    xsd_path = repo / "schemas" / "soap-passwd.xsd"
    wsdl_path = repo / "wsdl" / "soap-passwd.wsdl"
    fixtures = repo / "fixtures"

    passed, failed = 0, 0

    def run(name, fn):
        nonlocal passed, failed
        try:
            note = fn()
        except (CheckFailed, ET.ParseError, xmlschema.XMLSchemaException, OSError) as exc:
            failed += 1
            print("FAIL %s: %s" % (name, exc))
            return None
        passed += 1
        print("ok   %s%s" % (name, ": " + note if isinstance(note, str) else ""))
        return note

    state = {}

    def xsd_check():
        state["xsd"] = load_xsd(xsd_path)
        return "valid XSD 1.0, %d global elements" % len(state["xsd"].elements)

    def wsdl_check():
        state["wsdl_schema"], state["wsdl_root"] = load_wsdl_schema(wsdl_path, xsd_path)
        return "imports the XSD through %s" % XSD_LOCATION_LITERAL

    def wsdl_structure_check():
        check_wsdl_structure(state["wsdl_root"], state["wsdl_schema"])
        return "messages, portType, SOAP 1.1/1.2 bindings and ports agree with the XSD"

    run("schemas/soap-passwd.xsd", xsd_check)
    run("wsdl/soap-passwd.wsdl (import)", wsdl_check)
    if "wsdl_root" in state:
        run("wsdl/soap-passwd.wsdl (structure)", wsdl_structure_check)

    if "xsd" not in state:
        print("cannot validate fixtures without a loadable XSD")
        failed += 1
    else:
        schemas = [state["xsd"]] + ([state["wsdl_schema"]] if "wsdl_schema" in state else [])
        seen = set()
        for kind in ("requests", "responses"):
            files = sorted((fixtures / kind).glob("*.xml"))
            if not files:
                failed += 1
                print("FAIL fixtures/%s: no fixtures found" % kind)
            for path in files:
                rel = "%s/%s" % (kind, path.name)
                seen.add(rel)
                run("fixtures/" + rel, lambda p=path, r=rel, k=kind: check_fixture(p, r, k, schemas))
        for rel in sorted((EXPECTED_INVALID | UNQUALIFIED) - seen):
            failed += 1
            print("FAIL fixtures/%s: listed in this script but missing" % rel)

    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
