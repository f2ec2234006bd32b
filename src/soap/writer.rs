//! Writing envelopes: the success response and faults, in the request's SOAP version.

use std::borrow::Cow;

use quick_xml::escape::{escape, partial_escape};

use super::envelope::is_xml_char;
use super::fault::Fault;
use super::ops::Field;
use super::{API_NS, SoapVersion};

/// Envelope prefix: `SOAP-ENV` for 1.1 (what legacy clients expect to see), `env` for 1.2.
fn prefix(version: SoapVersion) -> &'static str {
    match version {
        SoapVersion::V11 => "SOAP-ENV",
        SoapVersion::V12 => "env",
    }
}

fn open_envelope(out: &mut String, version: SoapVersion) {
    let p = prefix(version);
    out.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    out.push_str(&format!(
        r#"<{p}:Envelope xmlns:{p}="{}">"#,
        version.envelope_ns()
    ));
}

/// An operation's result element `name` in `api`, holding `fields`, in `version`.
/// Every text is escaped.
pub fn write_result(version: SoapVersion, name: &str, fields: &[Field]) -> String {
    let p = prefix(version);
    let mut out = String::with_capacity(320);
    open_envelope(&mut out, version);
    out.push_str(&format!(r#"<{p}:Body><{name} xmlns="{API_NS}">"#));
    write_fields(&mut out, fields);
    out.push_str(&format!("</{name}></{p}:Body></{p}:Envelope>"));
    out
}

fn write_fields(out: &mut String, fields: &[Field]) {
    for field in fields {
        match field {
            Field::Text(name, value) => {
                out.push_str(&format!(
                    "<{name}>{}</{name}>",
                    partial_escape(xml_chars(value).as_ref())
                ));
            }
            Field::Group(name, children) => {
                out.push_str(&format!("<{name}>"));
                write_fields(out, children);
                out.push_str(&format!("</{name}>"));
            }
        }
    }
}

/// `s` with every character XML 1.0 cannot carry (controls, U+FFFE, U+FFFF) replaced by
/// U+FFFD: no escape can write them.
fn xml_chars(s: &str) -> Cow<'_, str> {
    let ok = is_xml_char;
    if s.chars().all(ok) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(
            s.chars()
                .map(|c| if ok(c) { c } else { '\u{FFFD}' })
                .collect(),
        )
    }
}

const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// A fault envelope in `version`. Every dynamic string is escaped.
pub fn write_fault(version: SoapVersion, fault: &Fault) -> String {
    let p = prefix(version);
    let code = format!("{p}:{}", fault.code.local_name(version));
    let mut out = String::with_capacity(768);
    open_envelope(&mut out, version);
    if version == SoapVersion::V12 && !fault.not_understood.is_empty() {
        out.push_str(&format!("<{p}:Header>"));
        for (i, name) in fault.not_understood.iter().enumerate() {
            let local = xml_chars(&name.local);
            // The reserved namespaces have their own prefixes and may not be declared;
            // the empty namespace name means no namespace.
            let (decl, qname) = match name.ns.as_deref() {
                None | Some("") => (String::new(), local.into_owned()),
                Some(XML_NS) => (String::new(), format!("xml:{local}")),
                Some(XMLNS_NS) => (String::new(), format!("xmlns:{local}")),
                Some(ns) => (
                    format!(r#" xmlns:nu{i}="{}""#, escape(xml_chars(ns).as_ref())),
                    format!("nu{i}:{local}"),
                ),
            };
            out.push_str(&format!(
                r#"<{p}:NotUnderstood qname="{}"{decl}/>"#,
                escape(qname.as_str())
            ));
        }
        out.push_str(&format!("</{p}:Header>"));
    }
    out.push_str(&format!("<{p}:Body><{p}:Fault>"));
    let reason = xml_chars(fault.reason.as_ref());
    let reason = partial_escape(reason.as_ref());
    match version {
        SoapVersion::V11 => {
            out.push_str(&format!(
                "<faultcode>{code}</faultcode><faultstring>{reason}</faultstring>"
            ));
        }
        SoapVersion::V12 => {
            out.push_str(&format!(
                r#"<{p}:Code><{p}:Value>{code}</{p}:Value></{p}:Code><{p}:Reason><{p}:Text xml:lang="en">{reason}</{p}:Text></{p}:Reason>"#
            ));
        }
    }
    if let Some(d) = &fault.detail {
        let (open, close) = match version {
            SoapVersion::V11 => ("<detail>".to_string(), "</detail>".to_string()),
            SoapVersion::V12 => (format!("<{p}:Detail>"), format!("</{p}:Detail>")),
        };
        out.push_str(&open);
        out.push_str(&format!(
            r#"<{el} xmlns="{API_NS}"><code>{code}</code><message>{msg}</message>"#,
            el = d.element,
            code = d.code,
            msg = partial_escape(xml_chars(&d.message).as_ref())
        ));
        for (name, value) in &d.extras {
            out.push_str(&format!(
                "<{name}>{}</{name}>",
                partial_escape(xml_chars(value).as_ref())
            ));
        }
        out.push_str(&format!("</{}>", d.element));
        out.push_str(&close);
    }
    out.push_str(&format!("</{p}:Fault></{p}:Body></{p}:Envelope>"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DenyReason, ServiceError};
    use crate::soap::{Limits, parse_envelope};

    #[test]
    fn faults_are_well_formed_with_qualified_codes() {
        let f = Fault::from_service_error(&ServiceError::PermissionDenied(DenyReason::NotInScope));
        let xml = write_fault(SoapVersion::V11, &f);
        assert!(xml.contains(
            "<faultcode>SOAP-ENV:Client</faultcode><faultstring>Permission denied</faultstring>"
        ));
        assert!(xml.contains("<reason>NOT_IN_SCOPE</reason>"));
        let xml12 = write_fault(SoapVersion::V12, &f);
        assert!(xml12.contains("<env:Value>env:Sender</env:Value>"));
        assert_eq!(f.http_status(SoapVersion::V12), 400);
        assert_eq!(f.http_status(SoapVersion::V11), 500);
        // the fault writer's output is itself a parseable envelope
        for xml in [xml, xml12] {
            let err = parse_envelope(&xml, &Limits::default()).unwrap_err();
            assert_eq!(err.error, crate::soap::EnvelopeError::UnknownOperation);
        }
    }
}
