#!/usr/bin/env python3
"""Validate the published schema, the WSDL and every SOAP fixture against each other.

What is checked:

* schemas/soap-passwd.xsd is a valid XML Schema 1.0 document declaring exactly
  the request and result elements of the three operations (UpdateUserPassword,
  UpdateUserPasswords, GetUserPasswordStatus, ResetUserPasswords) and the five fault
  elements; the
  operations' names themselves (the RPC-style alias the service accepts in
  place of a request element, contract 11.5) are NOT declared;
* the codes of violation and reason may grow (contract 11.5): ViolationCode and
  PermissionDeniedReason are unions of their documented enumeration and
  xs:string, so a fault detail or batch item fault carrying a code that is not
  in the enumeration (SOME_FUTURE_CODE) is valid, and so is every documented one;
* wsdl/soap-passwd.wsdl imports that schema through the relative schemaLocation
  that the server rewrites (exactly once), the imported schema loads from the
  WSDL's own location, every message part names one of its global elements,
  the portType declares the three operations with their input/output messages
  and faults (UpdateUserPasswords: WrongParameters, AuthenticationFailed,
  ServerBusy; the others all five), and both bindings bind each operation
  (soapAction = its name, literal bodies) with exactly those faults, literal;
* for every file in fixtures/requests and fixtures/responses: the SOAP envelope
  is well-shaped (SOAP 1.1 or 1.2, one payload element in the Body, faults with
  the contract's faultcode/faultstring), and the payload -- the Body's first
  child (a request or result element of one of the operations), or for a fault
  the element inside detail / env:Detail -- is valid against the XSD, both as
  loaded directly and as imported by the WSDL.

Some fixtures are deliberately not schema-valid (see EXPECTED_INVALID); for
those the check is that validation *fails*. Fixtures in UNQUALIFIED are sent in
the JAX-WS style the service accepts but the published schema does not: their
raw payload must fail, and must pass once the unqualified descendants are put
in the target namespace (which is what the service does). Fixtures in ALIASED
send the operation's name in place of its request element: their raw payload
must fail (the name is not declared), and must pass once renamed to the
request element (which is what the service does).

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

# Fixtures whose payload is named after the operation instead of its request element
# (RPC-minded stacks such as SOAP::Lite): invalid as sent, valid once renamed.
ALIASED = {
    "requests/operation-name-alias.xml",
}

# Per fault detail element: (SOAP 1.1 faultcode, SOAP 1.2 Code/Value, faultstring).
FAULTS = {
    "WrongParametersFault": ("Client", "Sender", "Wrong parameters"),
    "AuthenticationFailedFault": ("Client", "Sender", "Authorization failed"),
    "UnknownUserFault": ("Client", "Sender", "Unknown user"),
    "PermissionDeniedFault": ("Client", "Sender", "Permission denied"),
    "ServerBusyFault": ("Server", "Receiver", "Server busy"),
}

ALL_FAULTS = frozenset(FAULTS)

# Per operation: (request element / input message, result element / output message, faults).
OPERATIONS = {
    "UpdateUserPassword": ("UpdateUserPasswordRequest", "UpdateUserPasswordResult", ALL_FAULTS),
    "UpdateUserPasswords": ("UpdateUserPasswordsRequest", "UpdateUserPasswordsResult",
                            frozenset({"WrongParametersFault", "AuthenticationFailedFault",
                                       "ServerBusyFault"})),
    "GetUserPasswordStatus": ("GetUserPasswordStatusRequest", "GetUserPasswordStatusResult",
                              ALL_FAULTS),
    "ResetUserPasswords": ("ResetUserPasswordsRequest", "ResetUserPasswordsResult",
                           frozenset({"WrongParametersFault", "AuthenticationFailedFault",
                                      "PermissionDeniedFault", "ServerBusyFault"})),
}
REQUEST_ELEMENTS = {spec[0]: op for op, spec in OPERATIONS.items()}
RESULT_ELEMENTS = {spec[1] for spec in OPERATIONS.values()}

# The documented codes (contract 4 and 11.1) and one that is not (yet) among them.
KNOWN_VIOLATIONS = ["TOO_SHORT", "TOO_LONG", "SAME_AS_CURRENT", "CONTAINS_EMAIL", "TOO_COMMON",
                    "REUSED", "CONFIRM_MISMATCH"]
KNOWN_REASONS = ["NOT_IN_SCOPE", "OUTRANKS_CALLER", "USER_DEACTIVATED", "EXTERNALLY_MANAGED",
                 "SELF_SERVICE_DISABLED", "PASSWORD_CHANGE_REQUIRED"]
FUTURE_CODE = "SOME_FUTURE_CODE"


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
    expected = {*REQUEST_ELEMENTS, *RESULT_ELEMENTS, *FAULTS}
    found = {local_name(name) for name in schema.elements}
    if found != expected:
        raise CheckFailed("global elements are %s, expected %s" % (sorted(found), sorted(expected)))
    return schema


def check_aliases_undeclared(schema):
    """The operations' names (accepted by the service in place of the request element,
    contract 11.5) are not declared by the XSD: an alias-named payload is invalid."""
    for op, (request, _result, _faults) in OPERATIONS.items():
        if q(API_NS, op) in schema.maps.elements:
            raise CheckFailed("the operation name %s is declared as an element" % op)
        alias = ET.Element(q(API_NS, op))
        if not schema_errors(schema, alias):
            raise CheckFailed("an empty %s element is unexpectedly valid" % op)
        if q(API_NS, request) not in schema.maps.elements:
            raise CheckFailed("request element %s is not declared" % request)
    return "%s not declared (alias-named requests are invalid)" % ", ".join(OPERATIONS)


def fault_detail(name, children):
    """A fault detail element {api}name with (child, text) children, in order."""
    elem = ET.Element(q(API_NS, name))
    for child, text in children:
        ET.SubElement(elem, q(API_NS, child)).text = text
    return elem


def batch_result_with_item_fault(children):
    """An UpdateUserPasswordsResult holding one failed item whose fault has children."""
    result = ET.Element(q(API_NS, "UpdateUserPasswordsResult"))
    item = ET.SubElement(result, q(API_NS, "item"))
    ET.SubElement(item, q(API_NS, "userId")).text = "u-1"
    ET.SubElement(item, q(API_NS, "success")).text = "false"
    fault = ET.SubElement(item, q(API_NS, "fault"))
    for child, text in children:
        ET.SubElement(fault, q(API_NS, child)).text = text
    return result


def check_open_code_types(schema):
    """ViolationCode and PermissionDeniedReason are unions of the documented enumeration and
    xs:string: a code not in the enumeration is valid wherever they are used (fault detail
    and batch item fault), and so is every documented code."""
    for type_name, known_name, known in (("ViolationCode", "KnownViolationCode", KNOWN_VIOLATIONS),
                                         ("PermissionDeniedReason", "KnownPermissionDeniedReason",
                                          KNOWN_REASONS)):
        simple = schema.maps.types.get(q(API_NS, type_name))
        members = getattr(simple, "member_types", None)
        if not members:
            raise CheckFailed("%s is not a union" % type_name)
        names = [m.name for m in members]
        if names != [q(API_NS, known_name), q(XSD_NS, "string")]:
            raise CheckFailed("%s is a union of %s, expected %s and xs:string"
                              % (type_name, names, known_name))
        enum = schema.maps.types[q(API_NS, known_name)].enumeration
        if sorted(enum or []) != sorted(known):
            raise CheckFailed("%s enumerates %s, expected %s" % (known_name, enum, known))
        if FUTURE_CODE in enum:
            raise CheckFailed("%s already enumerates %s" % (known_name, FUTURE_CODE))

    samples = []
    for code in KNOWN_VIOLATIONS + [FUTURE_CODE]:
        samples.append(("WrongParametersFault violation %s" % code, fault_detail(
            "WrongParametersFault", [("code", "WRONG_PARAMETERS"), ("message", "m"),
                                     ("parameter", "password"), ("violation", code)])))
        samples.append(("item fault violation %s" % code, batch_result_with_item_fault(
            [("type", "WrongParametersFault"), ("code", "WRONG_PARAMETERS"), ("message", "m"),
             ("parameter", "password"), ("violation", "TOO_SHORT"), ("violation", code)])))
    for code in KNOWN_REASONS + [FUTURE_CODE]:
        samples.append(("PermissionDeniedFault reason %s" % code, fault_detail(
            "PermissionDeniedFault", [("code", "PERMISSION_DENIED"), ("message", "m"),
                                      ("reason", code)])))
        samples.append(("item fault reason %s" % code, batch_result_with_item_fault(
            [("type", "PermissionDeniedFault"), ("code", "PERMISSION_DENIED"), ("message", "m"),
             ("reason", code)])))
    for what, elem in samples:
        errors = schema_errors(schema, elem)
        if errors:
            raise CheckFailed("%s is invalid: %s" % (what, errors[0]))
    # The fixed fault code is still closed: the union is only on violation and reason.
    closed = fault_detail("WrongParametersFault", [("code", FUTURE_CODE), ("message", "m"),
                                                   ("parameter", "password")])
    if not schema_errors(schema, closed):
        raise CheckFailed("a WrongParametersFault with code %s is unexpectedly valid" % FUTURE_CODE)
    return "violation and reason accept %s (and the %d documented codes)" % (
        FUTURE_CODE, len(KNOWN_VIOLATIONS) + len(KNOWN_REASONS))


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

    # The portType declares the three operations, each with its messages and faults.
    port_types = root.findall(q(WSDL_NS, "portType"))
    if len(port_types) != 1:
        raise CheckFailed("expected one portType, found %d" % len(port_types))
    ops = port_types[0].findall(q(WSDL_NS, "operation"))
    names = [op.get("name") for op in ops]
    if sorted(names) != sorted(OPERATIONS):
        raise CheckFailed("portType operations are %s, expected %s" % (names, sorted(OPERATIONS)))
    for op in ops:
        name = op.get("name")
        request, result, faults = OPERATIONS[name]
        for direction, message in (("input", request), ("output", result)):
            io = op.findall(q(WSDL_NS, direction))
            if len(io) != 1 or io[0].get("message") != "tns:" + message or message not in messages:
                raise CheckFailed("portType operation %s: %s must be message tns:%s"
                                  % (name, direction, message))
            part = messages[message].find(q(WSDL_NS, "part"))
            if part.get("element") != "tns:" + message:
                raise CheckFailed("message %s must carry element tns:%s" % (message, message))
        declared = [f.get("name") for f in op.findall(q(WSDL_NS, "fault"))]
        if sorted(declared) != sorted(faults):
            raise CheckFailed("portType operation %s declares faults %s, expected %s"
                              % (name, sorted(declared), sorted(faults)))
        for f in op.findall(q(WSDL_NS, "fault")):
            if f.get("message") != "tns:" + f.get("name") or f.get("name") not in messages:
                raise CheckFailed("portType operation %s: fault %s has message %r"
                                  % (name, f.get("name"), f.get("message")))
            part = messages[f.get("name")].find(q(WSDL_NS, "part"))
            if part.get("element") != "tns:" + f.get("name"):
                raise CheckFailed("fault message %s must carry element tns:%s"
                                  % (f.get("name"), f.get("name")))

    # Both bindings: document style, HTTP transport; every operation with soapAction = its
    # name, literal bodies, and exactly the portType's faults, literal and named.
    for binding_name, ns in (("UserPasswordSoap11Binding", WSDL_SOAP11_NS),
                             ("UserPasswordSoap12Binding", WSDL_SOAP12_NS)):
        binding = root.find("%s[@name='%s']" % (q(WSDL_NS, "binding"), binding_name))
        if binding is None:
            raise CheckFailed("binding %s is missing" % binding_name)
        if binding.get("type") != "tns:" + port_types[0].get("name"):
            raise CheckFailed("binding %s: type is %r" % (binding_name, binding.get("type")))
        sb = binding.find(q(ns, "binding"))
        if sb is None or sb.get("style") != "document" \
                or sb.get("transport") != "http://schemas.xmlsoap.org/soap/http":
            raise CheckFailed("binding %s: bad soap binding element" % binding_name)
        bound_ops = binding.findall(q(WSDL_NS, "operation"))
        bound_names = [op.get("name") for op in bound_ops]
        if sorted(bound_names) != sorted(OPERATIONS):
            raise CheckFailed("binding %s binds operations %s" % (binding_name, bound_names))
        for op in bound_ops:
            name = op.get("name")
            request, result, faults = OPERATIONS[name]
            so = op.find(q(ns, "operation"))
            if so is None or so.get("soapAction") != name:
                raise CheckFailed("binding %s: soapAction of %s must be %s" % (binding_name, name, name))
            for direction, message in (("input", request), ("output", result)):
                io = op.find(q(WSDL_NS, direction))
                body = None if io is None else io.find(q(ns, "body"))
                if body is None or body.get("use") != "literal":
                    raise CheckFailed("binding %s: %s %s body must be literal"
                                      % (binding_name, name, direction))
                if io.get("name") not in (None, message):
                    raise CheckFailed("binding %s: %s %s is named %r, the portType's is %s"
                                      % (binding_name, name, direction, io.get("name"), message))
            bound = {}
            for f in op.findall(q(WSDL_NS, "fault")):
                sf = f.find(q(ns, "fault"))
                if sf is None or sf.get("use") != "literal" or sf.get("name") != f.get("name"):
                    raise CheckFailed("binding %s: %s fault %s must be literal and named"
                                      % (binding_name, name, f.get("name")))
                bound[f.get("name")] = sf
            if set(bound) != set(faults):
                raise CheckFailed("binding %s: %s binds faults %s, expected %s"
                                  % (binding_name, name, sorted(bound), sorted(faults)))

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
        # A request element, or (ALIASED fixtures) an operation's name in its place.
        if namespace_of(first.tag) != API_NS \
                or local_name(first.tag) not in (*REQUEST_ELEMENTS, *OPERATIONS):
            raise CheckFailed("request payload is %s" % first.tag)
        return first
    if namespace_of(first.tag) == API_NS and local_name(first.tag) in RESULT_ELEMENTS:
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

    if local_name(payload.tag) in OPERATIONS and rel not in ALIASED:
        raise CheckFailed("payload %s is an operation's name: list the fixture in ALIASED"
                          % local_name(payload.tag))

    if rel in ALIASED:
        if local_name(payload.tag) not in OPERATIONS:
            raise CheckFailed("listed in ALIASED but its payload is %s" % payload.tag)
        if not errors:
            raise CheckFailed("the alias %s is unexpectedly valid (it must not be declared)"
                              % local_name(payload.tag))
        renamed = copy.deepcopy(payload)
        renamed.tag = q(API_NS, OPERATIONS[local_name(payload.tag)][0])
        errors = [e for s in schemas for e in schema_errors(s, renamed)]
        if errors:
            raise CheckFailed("invalid even once renamed to %s:\n      %s"
                              % (local_name(renamed.tag), "\n      ".join(errors)))
        return "the alias %s is not declared (invalid), valid once renamed to %s" % (
            local_name(payload.tag), local_name(renamed.tag))

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
        return "messages, portType (%s), SOAP 1.1/1.2 bindings and ports agree with the XSD" % (
            ", ".join(OPERATIONS))

    run("schemas/soap-passwd.xsd", xsd_check)
    if "xsd" in state:
        run("schemas/soap-passwd.xsd (operation-name aliases)",
            lambda: check_aliases_undeclared(state["xsd"]))
        run("schemas/soap-passwd.xsd (open violation and reason codes)",
            lambda: check_open_code_types(state["xsd"]))
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
        for rel in sorted((EXPECTED_INVALID | UNQUALIFIED | ALIASED) - seen):
            failed += 1
            print("FAIL fixtures/%s: listed in this script but missing" % rel)

    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
