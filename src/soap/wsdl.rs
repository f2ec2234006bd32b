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
    WSDL.replace(ADDRESS_PLACEHOLDER, &endpoint)
        .replace(SCHEMA_LOCATION_PLACEHOLDER, &format!("{endpoint}?xsd=soap-passwd"))
}

/// The schema served as `?xsd=name`, if there is one by that name.
pub fn schema(name: &str) -> Option<&'static str> {
    XSD_NAMES.contains(&name).then_some(XSD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_present_and_replaced() {
        assert!(WSDL.contains(ADDRESS_PLACEHOLDER));
        assert!(WSDL.contains(SCHEMA_LOCATION_PLACEHOLDER));
        let served = wsdl_for("https://passwd.example.com/soap");
        assert!(!served.contains("localhost:8080"));
        assert!(served.contains(r#"schemaLocation="https://passwd.example.com/soap?xsd=soap-passwd""#));
    }
}
