//! The published contract documents: the WSDL and its schema, served with the
//! endpoint's real address so that zeep, SoapUI and xmllint can load them from the URL.

use quick_xml::escape::escape;

/// The WSDL as shipped in `wsdl/`, with the address and schema location placeholders below.
pub const WSDL: &str = include_str!("../../wsdl/soap-passwd.wsdl");
/// The schema as shipped in `schemas/`.
pub const XSD: &str = include_str!("../../schemas/soap-passwd.xsd");

/// Names the schema is served under (`?xsd=NAME`).
pub const XSD_NAMES: &[&str] = &["soap-passwd", "soap-passwd.xsd"];

const ADDRESS_PLACEHOLDER: &str = "http://localhost:8080/soap";
const SCHEMA_LOCATION_PLACEHOLDER: &str = "../schemas/soap-passwd.xsd";

/// The WSDL with `soap:address` set to `endpoint` and the schema import pointing at
/// `endpoint?xsd=soap-passwd`.
pub fn wsdl_for(endpoint: &str) -> String {
    let endpoint = escape(endpoint);
    WSDL.replace(ADDRESS_PLACEHOLDER, &endpoint).replace(
        SCHEMA_LOCATION_PLACEHOLDER,
        &format!("{endpoint}?xsd=soap-passwd"),
    )
}

/// The WSDL with the schema inlined in `wsdl:types` instead of imported (`?singleWsdl`,
/// the WCF convention, for importers that mishandle `xs:import`), `soap:address` set to
/// `endpoint`.
pub fn single_wsdl_for(endpoint: &str) -> String {
    let wsdl = wsdl_for(endpoint);
    let (Some(start), Some(end)) = (wsdl.find("<wsdl:types>"), wsdl.find("</wsdl:types>")) else {
        return wsdl;
    };
    // The schema's root element onwards: no XML declaration, no leading comment.
    let schema = XSD
        .find("<xs:schema")
        .map_or(XSD, |at| &XSD[at..])
        .trim_end();
    format!(
        "{}<wsdl:types>\n{schema}\n  {}",
        &wsdl[..start],
        &wsdl[end..]
    )
}

/// The schema served as `?xsd=name`, if there is one by that name.
pub fn schema(name: &str) -> Option<&'static str> {
    XSD_NAMES.contains(&name).then_some(XSD)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use quick_xml::Reader;
    use quick_xml::events::Event;

    use super::*;
    use crate::domain::{DenyReason, ParameterError, ServiceError, Violation};
    use crate::soap::{Fault, REQUEST_FIELDS};

    /// For every top-level XSD declaration (by `name`), the names of the elements and the
    /// enumeration values declared inside it, in order.
    fn xsd_declarations() -> HashMap<String, (Vec<String>, Vec<String>)> {
        let mut reader = Reader::from_str(XSD);
        let mut out: HashMap<String, (Vec<String>, Vec<String>)> = HashMap::new();
        let mut depth = 0;
        let mut current = String::new();
        loop {
            let (e, empty) = match reader.read_event().unwrap() {
                Event::Start(e) => (e, false),
                Event::Empty(e) => (e, true),
                Event::End(_) => {
                    depth -= 1;
                    continue;
                }
                Event::Eof => break,
                _ => continue,
            };
            let attr = |name: &str| {
                e.try_get_attribute(name)
                    .unwrap()
                    .map(|a| String::from_utf8(a.value.to_vec()).unwrap())
            };
            let local = String::from_utf8(e.local_name().as_ref().to_vec()).unwrap();
            if depth == 1 {
                current = attr("name").unwrap_or_default();
                out.entry(current.clone()).or_default();
            } else if depth > 1 {
                let entry = out.entry(current.clone()).or_default();
                match (local.as_str(), attr("name"), attr("value")) {
                    ("element", Some(name), _) => entry.0.push(name),
                    ("enumeration", _, Some(value)) => entry.1.push(value),
                    _ => {}
                }
            }
            if !empty {
                depth += 1;
            }
        }
        out
    }

    #[test]
    fn wire_struct_fields_match_the_published_schema() {
        let xsd = xsd_declarations();
        let mut declared = Vec::new();
        for field in &xsd["UpdateUserPasswordRequest"].0 {
            declared.push(field.clone());
            if field == "credentials" {
                declared.extend(
                    xsd["Credentials"]
                        .0
                        .iter()
                        .map(|c| format!("credentials/{c}")),
                );
            }
        }
        assert_eq!(declared, REQUEST_FIELDS);
        assert_eq!(xsd["UpdateUserPasswordResult"].0, ["success"]);
    }

    #[test]
    fn every_fault_written_matches_its_schema_declaration() {
        let xsd = xsd_declarations();
        let violations = [
            Violation::TooShort,
            Violation::TooLong,
            Violation::SameAsCurrent,
            Violation::ContainsEmail,
            Violation::TooCommon,
            Violation::Reused,
            Violation::ConfirmMismatch,
        ];
        let ids: Vec<&str> = violations.iter().map(|v| v.id()).collect();
        assert_eq!(xsd["KnownViolationCode"].1, ids);
        let reasons = [
            DenyReason::NotInScope,
            DenyReason::OutranksCaller,
            DenyReason::UserDeactivated,
            DenyReason::ExternallyManaged,
            DenyReason::SelfServiceDisabled,
            DenyReason::PasswordChangeRequired,
        ];
        let ids: Vec<&str> = reasons.iter().map(|r| r.id()).collect();
        assert_eq!(xsd["KnownPermissionDeniedReason"].1, ids);

        let errors = [
            ServiceError::WrongParameters(ParameterError {
                parameter: "password",
                message: String::new(),
                violations: vec![Violation::TooShort],
            }),
            ServiceError::AuthenticationFailed(crate::domain::AuthFailure::Credentials),
            ServiceError::UnknownUser,
            ServiceError::PermissionDenied(DenyReason::NotInScope),
            ServiceError::ServerBusy,
        ];
        let mut codes = Vec::new();
        for error in &errors {
            let detail = Fault::from_service_error(error).detail.unwrap();
            let mut children = vec!["code".to_string(), "message".to_string()];
            for (name, _) in &detail.extras {
                if children.last().map(String::as_str) != Some(*name) {
                    children.push(name.to_string());
                }
            }
            assert_eq!(xsd[detail.element].0, children, "{}", detail.element);
            codes.push(detail.code);
        }
        assert_eq!(xsd["FaultCode"].1, codes);
    }

    #[test]
    fn placeholders_are_present_and_replaced() {
        assert!(WSDL.contains(ADDRESS_PLACEHOLDER));
        assert!(WSDL.contains(SCHEMA_LOCATION_PLACEHOLDER));
        let served = wsdl_for("https://passwd.example.com/soap");
        assert!(!served.contains("localhost:8080"));
        assert!(
            served.contains(r#"schemaLocation="https://passwd.example.com/soap?xsd=soap-passwd""#)
        );
    }
}
