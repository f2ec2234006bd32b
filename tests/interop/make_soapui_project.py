#!/usr/bin/env python3
"""Writes fixtures/soapui-project.xml: a SoapUI project that loads the served WSDL (both
bindings, each with the four operations UpdateUserPassword, UpdateUserPasswords,
GetUserPasswordStatus and ResetUserPasswords) and holds one request per file in
fixtures/requests (verbatim), each test step naming the operation its Body element calls (the
request element, or the operation's own name sent in its place), with assertions on success,
on each fault's detail element, on each item of a batch result (success, or the item fault's
type, code and extras), on the fields of a status result and on a reset result (each item's
success, the shape of a returned link and its expiry, or the item's fault; the counts). Re-run
after changing a request fixture; a Rust test (tests/api/soapui.rs) fails when the project and
the fixtures drift apart, and .ci/test regenerates the project into a temporary file and fails
unless it is byte-identical to fixtures/soapui-project.xml (the output is deterministic).

Usage: tests/interop/make_soapui_project.py [OUTPUT]   (from the repository root or anywhere;
OUTPUT defaults to fixtures/soapui-project.xml)
"""
import pathlib
import sys
import uuid
import xml.etree.ElementTree as ET
from xml.sax.saxutils import quoteattr

ROOT = pathlib.Path(__file__).resolve().parents[2]
API = "http://ispringlearn.com/go/services/api/soap"
WSDL_URL = "http://localhost:8080/soap?wsdl"
ENDPOINT = "http://localhost:8080/soap"

# The operations of the WSDL's port type (both bindings), in the WSDL's order.
OPERATIONS = ["UpdateUserPassword", "UpdateUserPasswords", "GetUserPasswordStatus", "ResetUserPasswords"]


class Batch:
    """An UpdateUserPasswordsResult: per request item, in order, (userId, None) for success
    or (userId, (detail element, {child: value})) for the item's fault."""

    def __init__(self, *items):
        self.items = items


class Status:
    """A GetUserPasswordStatusResult with these {field: text} values (passwordChangedAt, a
    timestamp, is asserted present; lockedUntil present only if listed)."""

    def __init__(self, **fields):
        self.fields = fields


class Reset:
    """A ResetUserPasswordsResult: its items in order, (userId, None) for a user reset (with
    link: a link {origin}/reset/{token} and its expiresAt; without: expiresAt only, the link
    went to the user) or (userId, (detail element, {child: value})) for the item's fault;
    then the counts reset and skipped. A link is random: its shape is asserted, not its value."""

    def __init__(self, *items, link, reset, skipped):
        self.items = items
        self.link = link
        self.reset = reset
        self.skipped = skipped


# Expected outcome per request fixture: None for an UpdateUserPasswordResult with success
# true, (detail element, {child: value}) for a fault, or a Batch, Status or Reset result.
OUTCOMES = {
    "success": None,
    "success-soap12": None,
    "unqualified-children": None,
    "operation-name-alias": None,
    "passwordconfirm-nil": None,
    "temporary": None,
    "wrong-parameters": ("WrongParametersFault", {"parameter": "userId"}),
    "policy-violation": ("WrongParametersFault", {"parameter": "password", "violation": "TOO_SHORT"}),
    "confirm-mismatch": ("WrongParametersFault", {"parameter": "passwordConfirm", "violation": "CONFIRM_MISMATCH"}),
    "authentication-failed": ("AuthenticationFailedFault", {}),
    "unknown-user": ("UnknownUserFault", {}),
    "permission-denied-not-in-scope": ("PermissionDeniedFault", {"reason": "NOT_IN_SCOPE"}),
    "permission-denied-outranks": ("PermissionDeniedFault", {"reason": "OUTRANKS_CALLER"}),
    "permission-denied-deactivated": ("PermissionDeniedFault", {"reason": "USER_DEACTIVATED"}),
    "permission-denied-externally-managed": ("PermissionDeniedFault", {"reason": "EXTERNALLY_MANAGED"}),
    "batch-mixed": Batch(
        ("u-trainer", None),
        ("u-owner", ("PermissionDeniedFault", {"code": "PERMISSION_DENIED", "reason": "OUTRANKS_CALLER"})),
        ("u-nobody", ("UnknownUserFault", {"code": "UNKNOWN_USER"})),
        ("u-learner2", ("WrongParametersFault", {"code": "WRONG_PARAMETERS", "parameter": "password", "violation": "TOO_SHORT"})),
    ),
    # delivery=return: the link comes back to the caller (reset counts the users reset,
    # skipped the refused ones).
    "reset-return": Reset(
        ("u-trainer", None),
        ("u-owner", ("PermissionDeniedFault", {"code": "PERMISSION_DENIED", "reason": "OUTRANKS_CALLER"})),
        ("u-former", ("PermissionDeniedFault", {"code": "PERMISSION_DENIED", "reason": "USER_DEACTIVATED"})),
        link=True, reset=1, skipped=2,
    ),
    # allInScope (delivery=notify): only the skipped users are listed; u-learner, reset, is not.
    "reset-all-in-scope": Reset(
        ("u-trainer", ("PermissionDeniedFault", {"code": "PERMISSION_DENIED", "reason": "OUTRANKS_CALLER"})),
        ("u-former", ("PermissionDeniedFault", {"code": "PERMISSION_DENIED", "reason": "USER_DEACTIVATED"})),
        ("u-sso", ("PermissionDeniedFault", {"code": "PERMISSION_DENIED", "reason": "EXTERNALLY_MANAGED"})),
        link=False, reset=1, skipped=3,
    ),
    "reset-all-in-scope-return-soap12": ("WrongParametersFault", {"parameter": "delivery"}),
    "status-soap12": Status(
        userId="u-sso", status="active", externallyManaged="true", temporary="false",
        credentialVersion="1", resetPending="false",
    ),
}

BINDINGS = {
    "1_1": "UserPasswordSoap11Binding",
    "1_2": "UserPasswordSoap12Binding",
}


_counter = iter(range(1_000_000))


def ident():
    """Stable ids, so regenerating the project gives the same file."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"soap-passwd/{next(_counter)}")).upper()


def cdata(text):
    assert "]]>" not in text
    return f"<![CDATA[{text}]]>"


def xpath_assertion(name, path, expected):
    return f"""<con:assertion type="XPath Match" id="{ident()}" name={quoteattr(name)}>
            <con:configuration>
              <path>declare namespace api='{API}';
{path}</path>
              <content>{expected}</content>
              <allowWildcards>false</allowWildcards>
              <ignoreNamspaceDifferences>false</ignoreNamspaceDifferences>
              <ignoreComments>false</ignoreComments>
            </con:configuration>
          </con:assertion>"""


def operation_of(request_text):
    """The operation a request calls: its Body's first element, a request element
    (UpdateUserPasswordRequest) or the operation's name sent in its place (contract 11.5)."""
    root = ET.fromstring(request_text.encode("utf-8"))
    body = next(child for child in root if child.tag.rsplit("}", 1)[-1] == "Body")
    tag = next(iter(body)).tag
    namespace, _, local = tag[1:].partition("}")
    name = local[: -len("Request")] if local.endswith("Request") else local
    if namespace != API or name not in OPERATIONS:
        raise SystemExit(f"the Body's first element {tag} calls no operation of the WSDL")
    return name


def not_fault(result, path_in_result, expected, name):
    return [
        f'<con:assertion type="Not SOAP Fault Assertion" id="{ident()}" name="Not SOAP Fault"/>',
        xpath_assertion(name, f"//api:{result}/{path_in_result}", expected),
    ]


def item_assertions(result, items):
    """The count of a Batch or Reset result's items, and each one's userId, success and fault."""
    out = [xpath_assertion(f"{len(items)} items", f"exists(//api:{result}[count(api:item) = {len(items)}])", "true")]
    for n, (user, fault) in enumerate(items, start=1):
        item = f"//api:{result}/api:item[{n}]"
        if n > 1:
            out.append(xpath_assertion(f"item {n} is {user}", f"{item}/api:userId", user))
        out.append(xpath_assertion(f"item {n} success is {str(fault is None).lower()}", f"{item}/api:success", str(fault is None).lower()))
        if fault is None:
            out.append(xpath_assertion(f"item {n} has no fault", f"exists({item}/api:fault)", "false"))
            continue
        element, extras = fault
        out.append(xpath_assertion(f"item {n} fault type is {element}", f"{item}/api:fault/api:type", element))
        for child, value in extras.items():
            out.append(xpath_assertion(f"item {n} fault {child} is {value}", f"exists({item}/api:fault/api:{child}[. = '{value}'])", "true"))
    return out


def reset_assertions(result, outcome):
    """A Reset result: its items (item_assertions), for each user reset an expiresAt in UTC and,
    with delivery=return, a link {origin}/reset/{token of at least 128 bits, base64url: 22
    characters or more}; no expiresAt nor link on a refused item; then the counts."""
    out = []
    for n, (_user, fault) in enumerate(outcome.items, start=1):
        item = f"//api:{result}/api:item[{n}]"
        if fault is not None:
            out.append(xpath_assertion(f"item {n} has no link nor expiresAt", f"exists({item}/api:link | {item}/api:expiresAt)", "false"))
            continue
        out.append(xpath_assertion(f"item {n} expiresAt is a UTC time", f"exists({item}/api:expiresAt[substring(., string-length(.)) = 'Z'])", "true"))
        if not outcome.link:
            out.append(xpath_assertion(f"item {n} has no link", f"exists({item}/api:link)", "false"))
            continue
        link = f"{item}/api:link"
        out.append(xpath_assertion(f"item {n} link is http(s)://HOST/reset/TOKEN", f"exists({link}[starts-with(., 'http') and contains(., '://') and contains(., '/reset/')])", "true"))
        out.append(xpath_assertion(f"item {n} link token is 22 characters or more, without / ? #", f"exists({link}[string-length(substring-after(., '/reset/')) >= 22 and not(contains(substring-after(., '/reset/'), '/')) and not(contains(., '?')) and not(contains(., '#'))])", "true"))
    if not outcome.link:
        out.append(xpath_assertion("no link in any item", f"exists(//api:{result}/api:item/api:link)", "false"))
    out.append(xpath_assertion(f"reset is {outcome.reset}", f"//api:{result}/api:reset", str(outcome.reset)))
    out.append(xpath_assertion(f"skipped is {outcome.skipped}", f"//api:{result}/api:skipped", str(outcome.skipped)))
    return out


def assertions(operation, outcome):
    result = f"{operation}Result"
    if outcome is None:
        return not_fault(result, "api:success", "true", "success is true")
    if isinstance(outcome, (Batch, Reset)):
        out = not_fault(result, "api:item[1]/api:userId", outcome.items[0][0], f"item 1 is {outcome.items[0][0]}")
        out += item_assertions(result, outcome.items)
        if isinstance(outcome, Reset):
            out += reset_assertions(result, outcome)
        return out
    if isinstance(outcome, Status):
        fields = dict(outcome.fields)
        first = next(iter(fields))
        out = not_fault(result, f"api:{first}", fields.pop(first), f"{first} is {outcome.fields[first]}")
        for field, value in fields.items():
            out.append(xpath_assertion(f"{field} is {value}", f"//api:{result}/api:{field}", value))
        out.append(xpath_assertion("passwordChangedAt is a UTC time", f"exists(//api:{result}/api:passwordChangedAt[substring(., string-length(.)) = 'Z'])", "true"))
        if "lockedUntil" not in outcome.fields:
            out.append(xpath_assertion("no lockedUntil", f"exists(//api:{result}/api:lockedUntil)", "false"))
        return out
    element, extras = outcome
    out = [
        f'<con:assertion type="SOAP Fault Assertion" id="{ident()}" name="SOAP Fault"/>',
        xpath_assertion(f"detail is {element}", f"exists(//api:{element})", "true"),
    ]
    for child, value in extras.items():
        out.append(xpath_assertion(f"{child} is {value}", f"exists(//api:{element}/api:{child}[. = '{value}'])", "true"))
    return out


def main(output):
    requests = sorted((ROOT / "fixtures" / "requests").glob("*.xml"))
    names = [p.stem for p in requests]
    missing = set(names) ^ set(OUTCOMES)
    if missing:
        raise SystemExit(f"fixtures and OUTCOMES disagree on: {sorted(missing)}")
    interfaces = []
    for version, binding in BINDINGS.items():
        operations = "\n".join(f"""    <con:operation id="{ident()}" isOneWay="false" action="{op}" name="{op}" bindingOperationName="{op}" type="Request-Response" inputName="" receivesAttachments="false" sendsAttachments="false" anonymous="optional">
      <con:settings/>
    </con:operation>""" for op in OPERATIONS)
        interfaces.append(f"""  <con:interface xsi:type="con:WsdlInterface" id="{ident()}" wsaVersion="NONE" name="{binding}" type="wsdl" bindingName="{{{API}}}{binding}" soapVersion="{version}" anonymous="optional" definition="{WSDL_URL}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
    <con:settings/>
    <con:endpoints>
      <con:endpoint>{ENDPOINT}</con:endpoint>
    </con:endpoints>
{operations}
  </con:interface>""")
    steps = []
    for path in requests:
        text = path.read_text(encoding="utf-8")
        binding = BINDINGS["1_2" if "http://www.w3.org/2003/05/soap-envelope" in text else "1_1"]
        operation = operation_of(text)
        checks = "\n          ".join(assertions(operation, OUTCOMES[path.stem]))
        steps.append(f"""      <con:testStep type="request" id="{ident()}" name="{path.stem}">
        <con:settings/>
        <con:config xsi:type="con:RequestStep" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
          <con:interface>{binding}</con:interface>
          <con:operation>{operation}</con:operation>
          <con:request name="{path.stem}" id="{ident()}">
          <con:settings/>
          <con:encoding>UTF-8</con:encoding>
          <con:endpoint>{ENDPOINT}</con:endpoint>
          <con:request>{cdata(text)}</con:request>
          {checks}
          <con:credentials><con:authType>No Authorization</con:authType></con:credentials>
          <con:wsaConfig mustUnderstand="NONE" version="200508"/>
          </con:request>
        </con:config>
      </con:testStep>""")
    project = f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by tests/interop/make_soapui_project.py from fixtures/requests; do not edit by hand.
     SoapUI: File > Import Project. The requests expect the demo directory: start the
     service in demo mode on a fresh database first (README, "Run it"). -->
<con:soapui-project id="{ident()}" activeEnvironment="Default" name="soap-passwd" resourceRoot="" soapui-version="5.7.2" abortOnError="false" runType="SEQUENTIAL" xmlns:con="http://eviware.com/soapui/config">
  <con:settings/>
{chr(10).join(interfaces)}
  <con:testSuite id="{ident()}" name="Outcomes">
    <con:settings/>
    <con:runType>SEQUENTIAL</con:runType>
    <con:testCase id="{ident()}" failOnError="false" failTestCaseOnErrors="true" keepSession="false" maxResults="0" name="One request per outcome" searchProperties="true">
      <con:settings/>
{chr(10).join(steps)}
      <con:properties/>
    </con:testCase>
    <con:properties/>
  </con:testSuite>
  <con:properties/>
  <con:wssContainer/>
  <con:oAuth2ProfileContainer/>
  <con:oAuth1ProfileContainer/>
</con:soapui-project>
"""
    # newline="": the same bytes on every platform.
    output.write_text(project, encoding="utf-8", newline="")
    print(f"wrote {output} with {len(steps)} requests")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "fixtures" / "soapui-project.xml")
