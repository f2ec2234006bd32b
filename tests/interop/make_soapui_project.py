#!/usr/bin/env python3
"""Writes fixtures/soapui-project.xml: a SoapUI project that loads the served WSDL and holds
one request per file in fixtures/requests (verbatim), with assertions on success and on
each fault's detail element. Re-run after changing a request fixture; a Rust test
(tests/api/soapui.rs) fails when the project and the fixtures drift apart, and .ci/test
regenerates the project into a temporary file and fails unless it is byte-identical to
fixtures/soapui-project.xml (the output is deterministic).

Usage: tests/interop/make_soapui_project.py [OUTPUT]   (from the repository root or anywhere;
OUTPUT defaults to fixtures/soapui-project.xml)
"""
import pathlib
import sys
import uuid
from xml.sax.saxutils import quoteattr

ROOT = pathlib.Path(__file__).resolve().parents[2]
API = "http://ispringlearn.com/go/services/api/soap"
WSDL_URL = "http://localhost:8080/soap?wsdl"
ENDPOINT = "http://localhost:8080/soap"

# Expected outcome per request fixture: None for success, else (detail element, {child: value}).
OUTCOMES = {
    "success": None,
    "success-soap12": None,
    "unqualified-children": None,
    "wrong-parameters": ("WrongParametersFault", {"parameter": "userId"}),
    "policy-violation": ("WrongParametersFault", {"parameter": "password", "violation": "TOO_SHORT"}),
    "confirm-mismatch": ("WrongParametersFault", {"parameter": "passwordConfirm", "violation": "CONFIRM_MISMATCH"}),
    "authentication-failed": ("AuthenticationFailedFault", {}),
    "unknown-user": ("UnknownUserFault", {}),
    "permission-denied-not-in-scope": ("PermissionDeniedFault", {"reason": "NOT_IN_SCOPE"}),
    "permission-denied-outranks": ("PermissionDeniedFault", {"reason": "OUTRANKS_CALLER"}),
    "permission-denied-deactivated": ("PermissionDeniedFault", {"reason": "USER_DEACTIVATED"}),
    "permission-denied-externally-managed": ("PermissionDeniedFault", {"reason": "EXTERNALLY_MANAGED"}),
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


def assertions(outcome):
    if outcome is None:
        return [
            f'<con:assertion type="Not SOAP Fault Assertion" id="{ident()}" name="Not SOAP Fault"/>',
            xpath_assertion("success is true", "//api:UpdateUserPasswordResult/api:success", "true"),
        ]
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
        interfaces.append(f"""  <con:interface xsi:type="con:WsdlInterface" id="{ident()}" wsaVersion="NONE" name="{binding}" type="wsdl" bindingName="{{{API}}}{binding}" soapVersion="{version}" anonymous="optional" definition="{WSDL_URL}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
    <con:settings/>
    <con:endpoints>
      <con:endpoint>{ENDPOINT}</con:endpoint>
    </con:endpoints>
    <con:operation id="{ident()}" isOneWay="false" action="UpdateUserPassword" name="UpdateUserPassword" bindingOperationName="UpdateUserPassword" type="Request-Response" inputName="" receivesAttachments="false" sendsAttachments="false" anonymous="optional">
      <con:settings/>
    </con:operation>
  </con:interface>""")
    steps = []
    for path in requests:
        text = path.read_text(encoding="utf-8")
        binding = BINDINGS["1_2" if "http://www.w3.org/2003/05/soap-envelope" in text else "1_1"]
        checks = "\n          ".join(assertions(OUTCOMES[path.stem]))
        steps.append(f"""      <con:testStep type="request" id="{ident()}" name="{path.stem}">
        <con:settings/>
        <con:config xsi:type="con:RequestStep" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
          <con:interface>{binding}</con:interface>
          <con:operation>UpdateUserPassword</con:operation>
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
