//! WS-I Basic Profile 1.1 conformance, checked on what the running service serves: the WSDL
//! from `GET /soap?wsdl`, the schema it imports by URL, and real SOAP 1.1 answers (a success,
//! each typed fault, and the envelope-level faults).
//!
//! Each test pins one requirement, or a few that state one thing, and cites them by number.
//! BP 1.1 profiles SOAP 1.1 only, and moved the rules on how an envelope is serialised on
//! the wire into the Simple SOAP Binding Profile 1.0 (cited as "SSBP"). The contract's SOAP
//! 1.2 binding is outside the profile (see `r2401_…`); description rules that are about
//! document/literal in general are checked on both bindings all the same.
//!
//! Requirements that cannot apply to this service, so have no test:
//! - rpc-literal only: R2203, R2717, R2726, R2729, R2735, R2737 (every binding is document).
//! - one-way operations: R1112, R2714, R2727 (there are none; `r2303_…` asserts it).
//! - header blocks in the binding: R2719, R2720, R2738, R2741, R2751 (the binding declares no
//!   `soap:header`; `r2205_…` and `r2716_…` would check any that appeared).
//! - `parameterOrder`: R2302, R2305 (not used). `soapAction` empty or absent: R2745.
//! - `wsdl:import`: R2005, R2007, R2803 (`r2001_…` asserts there is none).
//! - WSDL schema validity, R2028/R2029: needs the WS-I copies of the WSDL 1.1 schemas, which
//!   are not vendored; the interop stage loads the WSDL in zeep, SoapUI and node-soap.
//! - R1115 (415 for a Content-Type the WSDL does not allow) is a SHOULD the contract overrides:
//!   the envelope's namespace, not the Content-Type, picks the SOAP version (contract §2), so
//!   legacy clients sending `application/xml` keep working.
//! - R1113 (400 for malformed HTTP) is actix-web's job; R1108 (no HTTP Extension Framework),
//!   R1002, R1003, R1016, R1017, R1107, R2748 and R2750 constrain the client side; R2025 is
//!   not mechanically checkable.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use crate::helpers::*;

const WSDL: &str = "http://schemas.xmlsoap.org/wsdl/";
const SOAPBIND: &str = "http://schemas.xmlsoap.org/wsdl/soap/";
const SOAP12BIND: &str = "http://schemas.xmlsoap.org/wsdl/soap12/";
const XSD: &str = "http://www.w3.org/2001/XMLSchema";
const SOAP_HTTP: &str = "http://schemas.xmlsoap.org/soap/http";
const SOAPENC: &str = "http://schemas.xmlsoap.org/soap/encoding/";
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

// ------------------------------------------------------------------ a namespace-aware tree

/// An element as a namespace-aware reader sees it.
#[derive(Debug)]
struct Element {
    ns: Option<String>,
    local: String,
    /// Attributes other than namespace declarations.
    attrs: Vec<Attr>,
    /// Namespace declarations made on this element: (prefix, "" for the default; namespace).
    declared: Vec<(String, String)>,
    /// Every prefix binding in scope here, for QName-valued attributes and text.
    scope: BTreeMap<String, String>,
    children: Vec<Element>,
    text: String,
}

#[derive(Debug)]
struct Attr {
    ns: Option<String>,
    local: String,
    value: String,
}

impl Element {
    fn is(&self, ns: &str, local: &str) -> bool {
        self.ns.as_deref() == Some(ns) && self.local == local
    }

    /// `{namespace}local`, for messages.
    fn name(&self) -> String {
        format!(
            "{{{}}}{}",
            self.ns.as_deref().unwrap_or_default(),
            self.local
        )
    }

    /// An unqualified attribute's value.
    fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_none() && a.local == local)
            .map(|a| a.value.as_str())
    }

    fn children_named(&self, ns: &str, local: &str) -> std::vec::IntoIter<&Element> {
        let named: Vec<&Element> = self.children.iter().filter(|c| c.is(ns, local)).collect();
        named.into_iter()
    }

    fn child(&self, ns: &str, local: &str) -> Option<&Element> {
        self.children_named(ns, local).next()
    }

    /// This element and every element below it, in document order.
    fn descendants(&self) -> Vec<&Element> {
        let mut out = vec![self];
        for c in &self.children {
            out.extend(c.descendants());
        }
        out
    }

    /// Resolves a QName-valued attribute or text in this element's scope.
    fn resolve(&self, qname: &str) -> (Option<String>, String) {
        match qname.trim().split_once(':') {
            Some((prefix, local)) => {
                let ns = self.scope.get(prefix).unwrap_or_else(|| {
                    panic!(
                        "prefix `{prefix}` of `{qname}` is not declared on <{}>",
                        self.local
                    )
                });
                (Some(ns.clone()), local.to_string())
            }
            None => (self.scope.get("").cloned(), qname.trim().to_string()),
        }
    }
}

/// A parsed document, with what surrounds its document element.
#[derive(Debug)]
struct Document {
    root: Element,
    /// The XML declaration's `version` and `encoding`.
    declaration: Option<(String, Option<String>)>,
    doctype: bool,
    processing_instructions: Vec<String>,
    /// Anything but whitespace after the document element ends.
    after_root: Vec<String>,
}

fn namespace(resolved: ResolveResult) -> Option<String> {
    match resolved {
        ResolveResult::Bound(ns) => Some(String::from_utf8_lossy(ns.as_ref()).into_owned()),
        ResolveResult::Unbound => None,
        ResolveResult::Unknown(p) => {
            panic!("undeclared prefix `{}`", String::from_utf8_lossy(&p))
        }
    }
}

fn open(
    reader: &NsReader<&[u8]>,
    ns: Option<String>,
    start: &BytesStart,
    parent: Option<&Element>,
) -> Element {
    let mut scope = parent.map(|p| p.scope.clone()).unwrap_or_default();
    let (mut attrs, mut declared) = (Vec::new(), Vec::new());
    for a in start.attributes() {
        let a = a.expect("well-formed attribute");
        let qname = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        let value = a.unescape_value().expect("attribute value").into_owned();
        let prefix = match qname.as_str() {
            "xmlns" => Some(""),
            q => q.strip_prefix("xmlns:"),
        };
        if let Some(prefix) = prefix {
            scope.insert(prefix.to_string(), value.clone());
            declared.push((prefix.to_string(), value));
            continue;
        }
        let (resolved, local) = reader.resolve_attribute(a.key);
        attrs.push(Attr {
            ns: namespace(resolved),
            local: String::from_utf8_lossy(local.as_ref()).into_owned(),
            value,
        });
    }
    Element {
        ns,
        local: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
        attrs,
        declared,
        scope,
        children: Vec::new(),
        text: String::new(),
    }
}

/// Parses `xml` with quick-xml's namespace-aware reader; panics unless it is well-formed.
fn parse(xml: &str) -> Document {
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut declaration = None;
    let mut doctype = false;
    let (mut processing_instructions, mut after_root) = (Vec::new(), Vec::new());
    let mut close = |el: Element, stack: &mut Vec<Element>, root: &mut Option<Element>| {
        if let Some(parent) = stack.last_mut() {
            parent.children.push(el);
        } else if root.is_none() {
            *root = Some(el);
        } else {
            after_root.push(format!("element <{}>", el.local));
        }
    };
    let mut trailing = Vec::new();
    loop {
        let (resolved, event) = reader
            .read_resolved_event()
            .unwrap_or_else(|e| panic!("not well-formed XML ({e}):\n{xml}"));
        let ns = namespace(resolved);
        let text = match &event {
            Event::Text(t) => Some(t.decode().expect("text").into_owned()),
            Event::CData(c) => Some(c.decode().expect("CDATA").into_owned()),
            Event::GeneralRef(r) => Some(match r.resolve_char_ref().expect("char ref") {
                Some(c) => c.to_string(),
                None => match &**r {
                    b"lt" => "<".into(),
                    b"gt" => ">".into(),
                    b"amp" => "&".into(),
                    b"apos" => "'".into(),
                    b"quot" => "\"".into(),
                    other => panic!("undeclared entity &{};", String::from_utf8_lossy(other)),
                },
            }),
            _ => None,
        };
        match event {
            Event::Start(e) => {
                let el = open(&reader, ns, &e, stack.last());
                stack.push(el);
            }
            Event::Empty(e) => {
                let el = open(&reader, ns, &e, stack.last());
                close(el, &mut stack, &mut root);
            }
            Event::End(_) => {
                let el = stack.pop().expect("balanced tags");
                close(el, &mut stack, &mut root);
            }
            Event::Comment(_) if stack.is_empty() && root.is_some() => {
                trailing.push("a comment".to_string());
            }
            Event::Decl(d) => {
                let version = String::from_utf8_lossy(&d.version().expect("version")).into_owned();
                let encoding = d
                    .encoding()
                    .map(|e| String::from_utf8_lossy(&e.expect("encoding")).into_owned());
                declaration = Some((version, encoding));
            }
            Event::PI(p) => processing_instructions.push(String::from_utf8_lossy(&p).into_owned()),
            Event::DocType(_) => doctype = true,
            Event::Eof => break,
            _ => {}
        }
        if let Some(text) = text {
            match stack.last_mut() {
                Some(top) => top.text.push_str(&text),
                None if !text.trim().is_empty() => trailing.push(format!("text {text:?}")),
                None => {}
            }
        }
    }
    assert!(stack.is_empty(), "unclosed elements:\n{xml}");
    after_root.extend(trailing);
    Document {
        root: root.unwrap_or_else(|| panic!("no document element:\n{xml}")),
        declaration,
        doctype,
        processing_instructions,
        after_root,
    }
}

// -------------------------------------------------------------------- what the service serves

/// A GET of an absolute URL: (status, Content-Type, body bytes).
fn fetch(app: &TestApp, url: &str) -> (u16, String, Vec<u8>) {
    let resp = app.client.get(url).send().expect("request sent");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, content_type, resp.bytes().expect("body").to_vec())
}

/// The WSDL and the schema it imports, as served, and where the schema was fetched from.
struct Description {
    wsdl: Document,
    wsdl_bytes: Vec<u8>,
    wsdl_content_type: String,
    schema_location: String,
    xsd: Document,
    xsd_bytes: Vec<u8>,
    xsd_content_type: String,
}

fn description(app: &TestApp) -> Description {
    let (status, wsdl_content_type, wsdl_bytes) = fetch(app, &format!("{}?wsdl", app.endpoint));
    assert_eq!(status, 200, "GET ?wsdl");
    let wsdl = parse(std::str::from_utf8(&wsdl_bytes).expect("the WSDL is UTF-8"));
    let import = wsdl
        .root
        .descendants()
        .into_iter()
        .find(|e| e.is(XSD, "import"))
        .expect("an xs:import in wsdl:types");
    let schema_location = import
        .attr("schemaLocation")
        .expect("xs:import has a schemaLocation")
        .to_string();
    let (status, xsd_content_type, xsd_bytes) = fetch(app, &schema_location);
    assert_eq!(status, 200, "GET {schema_location}");
    let xsd = parse(std::str::from_utf8(&xsd_bytes).expect("the schema is UTF-8"));
    Description {
        wsdl,
        wsdl_bytes,
        wsdl_content_type,
        schema_location,
        xsd,
        xsd_bytes,
        xsd_content_type,
    }
}

impl Description {
    fn definitions(&self) -> &Element {
        &self.wsdl.root
    }

    fn target_namespace(&self) -> &str {
        self.definitions()
            .attr("targetNamespace")
            .expect("wsdl:definitions has a targetNamespace")
    }

    /// The top-level WSDL component of `kind` that `qname`, written on `owner`, names.
    fn component<'a>(&'a self, kind: &str, owner: &Element, qname: &str) -> &'a Element {
        let (ns, local) = owner.resolve(qname);
        assert_eq!(
            ns.as_deref(),
            Some(self.target_namespace()),
            "{kind} `{qname}` is not in the WSDL's targetNamespace"
        );
        self.definitions()
            .children_named(WSDL, kind)
            .find(|c| c.attr("name") == Some(local.as_str()))
            .unwrap_or_else(|| panic!("no wsdl:{kind} named `{local}`"))
    }

    /// Every wsdl:binding with the namespace of its SOAP binding extension.
    fn bindings(&self) -> Vec<(&Element, &'static str)> {
        let bindings: Vec<_> = self
            .definitions()
            .children_named(WSDL, "binding")
            .map(|b| {
                let ns = [SOAPBIND, SOAP12BIND]
                    .into_iter()
                    .find(|ns| b.child(ns, "binding").is_some())
                    .unwrap_or_else(|| {
                        panic!("binding {:?} is not a SOAP binding", b.attr("name"))
                    });
                (b, ns)
            })
            .collect();
        assert!(!bindings.is_empty(), "the WSDL has bindings");
        bindings
    }

    fn soap11_binding(&self) -> &Element {
        let mut soap11 = self
            .bindings()
            .into_iter()
            .filter(|(_, ns)| *ns == SOAPBIND);
        let binding = soap11.next().expect("a SOAP 1.1 binding").0;
        assert!(soap11.next().is_none(), "one SOAP 1.1 binding");
        binding
    }

    fn port_type(&self, binding: &Element) -> &Element {
        self.component(
            "portType",
            binding,
            binding.attr("type").expect("binding@type"),
        )
    }

    /// The message an operation's input, output or fault (`io`) refers to.
    fn message(&self, io: &Element) -> &Element {
        self.component("message", io, io.attr("message").expect("@message"))
    }

    /// (binding operation, port type operation) pairs of `binding`.
    fn operations<'a>(&'a self, binding: &'a Element) -> Vec<(&'a Element, &'a Element)> {
        let port_type = self.port_type(binding);
        binding
            .children_named(WSDL, "operation")
            .map(|op| {
                let name = op.attr("name").expect("operation@name");
                let abstract_op = port_type
                    .children_named(WSDL, "operation")
                    .find(|o| o.attr("name") == Some(name))
                    .unwrap_or_else(|| panic!("no portType operation `{name}`"));
                (op, abstract_op)
            })
            .collect()
    }

    /// Names of the schema's global element declarations, qualified by its targetNamespace.
    fn global_elements(&self) -> BTreeSet<(String, String)> {
        let tns = self.xsd.root.attr("targetNamespace").unwrap_or_default();
        self.xsd
            .root
            .children_named(XSD, "element")
            .map(|e| {
                (
                    tns.to_string(),
                    e.attr("name").expect("element@name").to_string(),
                )
            })
            .collect()
    }

    /// The global element a `wsdl:part` names in `element`, checked to exist (R2206).
    fn part_element(&self, part: &Element) -> (String, String) {
        let qname = part
            .attr("element")
            .unwrap_or_else(|| panic!("part {:?} does not use `element`", part.attr("name")));
        let (ns, local) = part.resolve(qname);
        let name = (ns.unwrap_or_default(), local);
        assert!(
            self.global_elements().contains(&name),
            "part element {name:?} is not a global element of the imported schema"
        );
        name
    }
}

// ---------------------------------------------------------------------- what the service says

/// An envelope whose document element is called Envelope but is in no SOAP namespace.
fn foreign_envelope(operation: &str) -> String {
    format!(
        r#"<e:Envelope xmlns:e="urn:example:not-soap"><e:Body>{operation}</e:Body></e:Envelope>"#
    )
}

/// A SOAP 1.1 envelope with a mandatory header block the service does not know.
fn with_mandatory_header(operation: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="{SOAP11}"><soap:Header><t:Trace xmlns:t="urn:example:trace" soap:mustUnderstand="1">42</t:Trace></soap:Header><soap:Body>{operation}</soap:Body></soap:Envelope>"#
    )
}

/// One of every answer a SOAP 1.1 client can get without loading the service: the success,
/// each typed fault (named by its detail element) and the envelope-level faults.
fn soap11_answers(app: &TestApp) -> Vec<(&'static str, Reply)> {
    let wrong_password = (ADMIN.0, ADMIN.1, "Not-The-Admin-Password-1");
    let change = request(ACCOUNT, ADMIN.1, ADMIN.2, LEARNER2.0, STRONG);
    vec![
        ("success", app.change(Soap::V11, ADMIN, LEARNER.0, STRONG)),
        (
            "WrongParametersFault",
            app.change(Soap::V11, ADMIN, LEARNER.0, "short"),
        ),
        (
            "AuthenticationFailedFault",
            app.change(Soap::V11, wrong_password, LEARNER.0, STRONG),
        ),
        (
            "UnknownUserFault",
            app.change(Soap::V11, ADMIN, "u-nobody", STRONG),
        ),
        (
            "PermissionDeniedFault",
            app.change(Soap::V11, ADMIN, OWNER.0, STRONG),
        ),
        (
            "VersionMismatch",
            app.post(Soap::V11, foreign_envelope(&change)),
        ),
        (
            "MustUnderstand",
            app.post(Soap::V11, with_mandatory_header(&change)),
        ),
        ("Client (not XML)", app.post(Soap::V11, "this is not XML")),
        (
            "Client (unknown operation)",
            app.call(Soap::V11, r#"<x:Ping xmlns:x="urn:example:unknown"/>"#),
        ),
    ]
}

/// Every answer but the success.
fn faults(answers: Vec<(&'static str, Reply)>) -> Vec<(&'static str, Reply)> {
    let faults: Vec<_> = answers
        .into_iter()
        .filter(|(what, _)| *what != "success")
        .collect();
    assert_eq!(faults.len(), 8);
    faults
}

/// The typed faults among `answers`.
fn typed_faults<'a>(answers: &'a [(&'static str, Reply)]) -> Vec<(&'static str, &'a Reply)> {
    let typed: Vec<_> = answers
        .iter()
        .filter(|(what, _)| what.ends_with("Fault"))
        .map(|(what, reply)| (*what, reply))
        .collect();
    for (what, reply) in &typed {
        assert_eq!(
            reply.detail_element().as_deref(),
            Some(*what),
            "{}",
            reply.body
        );
    }
    assert_eq!(typed.len(), 4);
    typed
}

/// The SOAP 1.1 Body of a response (after checking the Envelope around it).
fn body(doc: &Document) -> &Element {
    assert!(doc.root.is(SOAP11, "Envelope"), "{:?}", doc.root.name());
    doc.root.child(SOAP11, "Body").expect("a Body")
}

// ============================================================================ the description

/// R4003: a DESCRIPTION MUST use either UTF-8 or UTF-16 encoding.
/// R4004: a DESCRIPTION MUST use version 1.0 of XML.
/// R2010/R2011: the same for an XML Schema the DESCRIPTION imports.
#[test]
fn r4003_r4004_r2010_r2011_the_wsdl_and_its_schema_are_xml_1_0_in_utf_8() {
    let app = spawn_app();
    let d = description(&app);
    for (what, doc, bytes, content_type) in [
        ("WSDL", &d.wsdl, &d.wsdl_bytes, &d.wsdl_content_type),
        ("XSD", &d.xsd, &d.xsd_bytes, &d.xsd_content_type),
    ] {
        assert!(std::str::from_utf8(bytes).is_ok(), "{what} is UTF-8");
        let (version, encoding) = doc.declaration.clone().expect("an XML declaration");
        assert_eq!(version, "1.0", "{what}");
        assert!(
            encoding.is_some_and(|e| e.eq_ignore_ascii_case("UTF-8")),
            "{what} declares UTF-8"
        );
        assert!(
            content_type.to_ascii_lowercase().contains("charset=utf-8"),
            "{what} Content-Type {content_type}"
        );
    }
}

/// R4005: a DESCRIPTION SHOULD NOT contain the namespace declaration
/// `xmlns:xml="http://www.w3.org/XML/1998/namespace"`.
#[test]
fn r4005_the_wsdl_and_its_schema_do_not_declare_the_xml_prefix() {
    let app = spawn_app();
    let d = description(&app);
    for doc in [&d.wsdl, &d.xsd] {
        for el in doc.root.descendants() {
            for (prefix, ns) in &el.declared {
                assert!(
                    prefix != "xml" && ns != XML_NS,
                    "<{}> declares xmlns:{prefix}={ns}",
                    el.local
                );
            }
        }
    }
}

/// R2001: a DESCRIPTION MUST only use the WSDL "import" statement to import another WSDL
/// description. R2002: to import XML Schema definitions it MUST use the XML Schema "import"
/// statement. R2003: it MUST use xsd:import only within the xsd:schema element of the types
/// section. (There is no wsdl:import at all, so R2005, R2007, R2022 and R2803 hold vacuously.)
#[test]
fn r2001_r2002_r2003_schemas_come_in_only_through_xs_import_inside_wsdl_types() {
    let app = spawn_app();
    let d = description(&app);
    let defs = d.definitions();
    assert!(defs.child(WSDL, "import").is_none(), "no wsdl:import");
    let types = defs.child(WSDL, "types").expect("wsdl:types");
    let mut imports = 0;
    for el in defs.descendants() {
        assert!(
            !el.is(XSD, "include") && !el.is(XSD, "redefine"),
            "xs:{} in the WSDL",
            el.local
        );
        if el.is(WSDL, "import") {
            panic!("wsdl:import below wsdl:definitions");
        }
    }
    for schema in types.children_named(XSD, "schema") {
        imports += schema.children_named(XSD, "import").count();
    }
    let everywhere = defs
        .descendants()
        .into_iter()
        .filter(|e| e.is(XSD, "import"))
        .count();
    assert_eq!(
        imports, everywhere,
        "every xs:import sits in wsdl:types/xs:schema"
    );
    assert_eq!(imports, 1);
}

/// R2004: the schemaLocation of an xsd:import MUST NOT resolve to a document whose root
/// element is not `schema` from the XML Schema namespace. Clients load the WSDL from its URL
/// alone (contract §2), so the location is absolute, served by this service, and the schema
/// there has the targetNamespace the import names.
#[test]
fn r2004_the_imported_schema_location_resolves_to_an_xs_schema_on_this_service() {
    let app = spawn_app();
    let d = description(&app);
    assert!(
        d.schema_location.starts_with(&format!("{}?", app.endpoint)),
        "schemaLocation {} is an absolute URL of this endpoint",
        d.schema_location
    );
    assert!(d.xsd.root.is(XSD, "schema"), "root {}", d.xsd.root.name());
    let import = d
        .definitions()
        .descendants()
        .into_iter()
        .find(|e| e.is(XSD, "import"))
        .expect("xs:import");
    let namespace = import.attr("namespace").expect("xs:import@namespace");
    assert_eq!(d.xsd.root.attr("targetNamespace"), Some(namespace));
    assert!(
        d.xsd_content_type.starts_with("text/xml"),
        "{}",
        d.xsd_content_type
    );
}

/// R2022: wsdl:import elements MUST precede all other WSDL elements except
/// wsdl:documentation. R2023: wsdl:types MUST precede all other WSDL elements except
/// wsdl:documentation and wsdl:import.
#[test]
fn r2022_r2023_wsdl_types_comes_before_every_other_wsdl_element() {
    let app = spawn_app();
    let d = description(&app);
    let ranks: Vec<(usize, &str)> = d
        .definitions()
        .children
        .iter()
        .filter(|c| c.ns.as_deref() == Some(WSDL))
        .map(|c| {
            let rank = match c.local.as_str() {
                "documentation" => 0,
                "import" => 1,
                "types" => 2,
                _ => 3,
            };
            (rank, c.local.as_str())
        })
        .collect();
    assert!(
        ranks.windows(2).all(|w| w[0].0 <= w[1].0),
        "order of wsdl:definitions children: {ranks:?}"
    );
    assert_eq!(ranks.iter().filter(|(_, l)| *l == "types").count(), 1);
}

/// R2026: a DESCRIPTION SHOULD NOT include extension elements with a wsdl:required attribute
/// value of "true" on any WSDL construct that claims conformance to the Profile.
#[test]
fn r2026_no_extension_is_marked_wsdl_required() {
    let app = spawn_app();
    let d = description(&app);
    for el in d.definitions().descendants() {
        for a in &el.attrs {
            assert!(
                !(a.ns.as_deref() == Some(WSDL)
                    && a.local == "required"
                    && a.value.trim() == "true"),
                "wsdl:required=\"true\" on <{}>",
                el.local
            );
        }
    }
}

/// R2030: wsdl:documentation MAY be present as the first child element of wsdl:import,
/// wsdl:part and wsdl:definitions (besides where WSDL 1.1 allows it) — always the first child.
#[test]
fn r2030_wsdl_documentation_is_always_a_first_child() {
    let app = spawn_app();
    let d = description(&app);
    let mut seen = 0;
    for el in d.definitions().descendants() {
        for (i, c) in el.children.iter().enumerate() {
            if c.is(WSDL, "documentation") {
                seen += 1;
                assert_eq!(i, 0, "wsdl:documentation is child {i} of <{}>", el.local);
            }
        }
    }
    assert!(seen > 0, "the WSDL documents itself");
}

/// R2101: a DESCRIPTION MUST NOT use QName references to WSDL components in namespaces that
/// have been neither imported, nor defined in the referring WSDL document.
/// R2102: a QName reference to a Schema component MUST use the namespace of the xsd:schema's
/// targetNamespace or of an xsd:import within it.
#[test]
fn r2101_r2102_every_qname_reference_resolves_to_a_defined_or_imported_namespace() {
    let app = spawn_app();
    let d = description(&app);
    let tns = d.target_namespace();
    let imported: HashSet<String> = d
        .definitions()
        .descendants()
        .into_iter()
        .filter(|e| e.is(XSD, "import"))
        .filter_map(|e| e.attr("namespace").map(str::to_string))
        .collect();
    let mut wsdl_refs = 0;
    for el in d.definitions().descendants() {
        // References to WSDL components: each must name one defined in this document.
        let wsdl_ref = match (el.ns.as_deref(), el.local.as_str()) {
            (Some(WSDL), "binding") => el.attr("type").map(|q| ("portType", q)),
            (Some(WSDL), "port") => el.attr("binding").map(|q| ("binding", q)),
            (Some(WSDL), "input" | "output" | "fault") => {
                el.attr("message").map(|q| ("message", q))
            }
            (Some(SOAPBIND | SOAP12BIND), "header" | "headerfault") => {
                el.attr("message").map(|q| ("message", q))
            }
            _ => None,
        };
        if let Some((kind, qname)) = wsdl_ref {
            d.component(kind, el, qname);
            wsdl_refs += 1;
        }
        // References to schema components.
        if el.is(WSDL, "part") {
            for attr in ["element", "type"] {
                if let Some(qname) = el.attr(attr) {
                    let (ns, _) = el.resolve(qname);
                    let ns = ns.unwrap_or_default();
                    assert!(
                        ns == XSD || imported.contains(&ns),
                        "part@{attr}={qname} is in {ns}, which wsdl:types does not import"
                    );
                }
            }
        }
    }
    assert!(
        wsdl_refs >= 2 + 2 * 3,
        "found the WSDL's references ({wsdl_refs})"
    );
    assert_eq!(
        imported,
        HashSet::from([tns.to_string()]),
        "the types import the API namespace"
    );

    // Inside the schema: type, base, ref and itemType name XML Schema's own types or the
    // schema's targetNamespace (it imports nothing), and what they name exists.
    let xsd_tns = d.xsd.root.attr("targetNamespace").unwrap_or_default();
    let defined: HashSet<(String, String)> = d
        .xsd
        .root
        .children
        .iter()
        .filter_map(|c| c.attr("name").map(|n| (c.local.clone(), n.to_string())))
        .collect();
    for el in d.xsd.root.descendants() {
        for attr in ["type", "base", "ref", "itemType"] {
            let Some(qname) = el.attr(attr) else { continue };
            let (ns, local) = el.resolve(qname);
            let ns = ns.unwrap_or_default();
            if ns == XSD {
                continue;
            }
            assert_eq!(ns, xsd_tns, "xs:{} @{attr}={qname}", el.local);
            let kinds: &[&str] = match attr {
                "ref" => &["element"],
                _ => &["simpleType", "complexType"],
            };
            assert!(
                kinds
                    .iter()
                    .any(|k| defined.contains(&(k.to_string(), local.clone()))),
                "@{attr}={qname} names nothing the schema defines"
            );
        }
    }
}

/// R2105: all xsd:schema elements in wsdl:types MUST have a targetNamespace, UNLESS the
/// xsd:schema has xsd:import and/or xsd:annotation as its only child elements.
#[test]
fn r2105_a_types_schema_without_target_namespace_holds_only_imports() {
    let app = spawn_app();
    let d = description(&app);
    let types = d.definitions().child(WSDL, "types").expect("wsdl:types");
    let schemas: Vec<_> = types.children_named(XSD, "schema").collect();
    assert!(!schemas.is_empty());
    for schema in schemas {
        let has_tns = schema
            .attr("targetNamespace")
            .is_some_and(|t| !t.trim().is_empty());
        let import_only = schema
            .children
            .iter()
            .all(|c| c.is(XSD, "import") || c.is(XSD, "annotation"));
        assert!(
            has_tns || import_only,
            "an xs:schema in wsdl:types has no targetNamespace and declares components"
        );
    }
}

/// R2114: the target namespace for WSDL definitions and the target namespace for schema
/// definitions MAY be the same — here both are the API namespace of contract §1, and the
/// schema qualifies every local element, so responses' descendants are qualified (R1014).
#[test]
fn r2114_the_wsdl_and_its_schema_share_the_api_target_namespace() {
    let app = spawn_app();
    let d = description(&app);
    assert_eq!(d.target_namespace(), API_NS);
    assert_eq!(d.xsd.root.attr("targetNamespace"), Some(API_NS));
    assert_eq!(d.xsd.root.attr("elementFormDefault"), Some("qualified"));
    assert_eq!(
        d.definitions().scope.get("tns").map(String::as_str),
        Some(API_NS)
    );
}

/// R2110: array declarations MUST NOT extend or restrict soapenc:Array. R2111: they MUST NOT
/// use wsdl:arrayType. R2112: elements SHOULD NOT be named ArrayOfXXX.
#[test]
fn r2110_r2111_r2112_the_schema_has_no_soap_encoded_arrays() {
    let app = spawn_app();
    let d = description(&app);
    for doc in [&d.xsd, &d.wsdl] {
        for el in doc.root.descendants() {
            if let Some(base) = el.attr("base") {
                assert_ne!(el.resolve(base).0.as_deref(), Some(SOAPENC), "base={base}");
            }
            for a in &el.attrs {
                assert!(
                    !(a.ns.as_deref() == Some(WSDL) && a.local == "arrayType"),
                    "wsdl:arrayType on <{}>",
                    el.local
                );
                assert_ne!(
                    a.ns.as_deref(),
                    Some(SOAPENC),
                    "soapenc attribute on <{}>",
                    el.local
                );
            }
            if el.is(XSD, "element") || el.is(XSD, "complexType") {
                let name = el.attr("name").unwrap_or_default();
                assert!(!name.starts_with("ArrayOf"), "{name}");
            }
            assert!(
                el.declared.iter().all(|(_, ns)| ns != SOAPENC),
                "<{}> declares the SOAP encoding namespace",
                el.local
            );
        }
    }
}

/// R2801: a DESCRIPTION MUST use XML Schema 1.0 as the basis of user defined datatypes and
/// structures.
#[test]
fn r2801_the_schema_is_xml_schema_1_0() {
    let app = spawn_app();
    let d = description(&app);
    let only_in_1_1 = [
        "assert",
        "assertion",
        "alternative",
        "openContent",
        "defaultOpenContent",
        "override",
    ];
    for el in d.xsd.root.descendants() {
        assert_eq!(el.ns.as_deref(), Some(XSD), "<{}> in the schema", el.local);
        assert!(
            !only_in_1_1.contains(&el.local.as_str()),
            "xs:{} is XSD 1.1",
            el.local
        );
    }
    for schema in d
        .definitions()
        .descendants()
        .into_iter()
        .filter(|e| e.local == "schema")
    {
        assert_eq!(schema.ns.as_deref(), Some(XSD));
    }
}

// ----------------------------------------------------------------------------- messages, parts

/// R2201: a document-literal binding MUST have at most one part listed in the parts attribute
/// of each soapbind:body. R2210: without a parts attribute, the message MUST define zero or
/// one parts.
#[test]
fn r2201_r2210_every_doc_literal_body_carries_at_most_one_part() {
    let app = spawn_app();
    let d = description(&app);
    for (binding, soap) in d.bindings() {
        for (op, abstract_op) in d.operations(binding) {
            for io in ["input", "output"] {
                let body = op
                    .child(WSDL, io)
                    .and_then(|b| b.child(soap, "body"))
                    .unwrap_or_else(|| panic!("{io} of {:?} has a soap body", op.attr("name")));
                let message = d.message(abstract_op.child(WSDL, io).expect("abstract io"));
                match body.attr("parts") {
                    Some(parts) => assert!(parts.split_whitespace().count() <= 1, "parts={parts}"),
                    None => assert!(
                        message.children_named(WSDL, "part").count() <= 1,
                        "message {:?} has several parts",
                        message.attr("name")
                    ),
                }
            }
        }
    }
}

/// R2204: a document-literal binding MUST refer, in each soapbind:body, only to wsdl:parts
/// defined with the element attribute. R2206: a part's element attribute MUST refer to a
/// global element declaration.
#[test]
fn r2204_r2206_body_parts_use_element_naming_a_global_schema_element() {
    let app = spawn_app();
    let d = description(&app);
    for (binding, _) in d.bindings() {
        for (_, abstract_op) in d.operations(binding) {
            for io in ["input", "output"] {
                let message = d.message(abstract_op.child(WSDL, io).expect("abstract io"));
                for part in message.children_named(WSDL, "part") {
                    assert!(part.attr("type").is_none(), "part uses type");
                    let (ns, _) = d.part_element(part);
                    assert_eq!(ns, API_NS);
                }
            }
        }
    }
}

/// R2205: a wsdl:binding MUST refer, in each soapbind:header, soapbind:headerfault and
/// soapbind:fault, only to wsdl:parts defined with the element attribute.
#[test]
fn r2205_fault_and_header_parts_use_element() {
    let app = spawn_app();
    let d = description(&app);
    let mut faults = 0;
    for (binding, soap) in d.bindings() {
        for (op, abstract_op) in d.operations(binding) {
            for fault in op.children_named(WSDL, "fault") {
                let name = fault.attr("name").expect("binding fault@name");
                let abstract_fault = abstract_op
                    .children_named(WSDL, "fault")
                    .find(|f| f.attr("name") == Some(name))
                    .unwrap_or_else(|| panic!("no portType fault `{name}`"));
                let parts: Vec<_> = d
                    .message(abstract_fault)
                    .children_named(WSDL, "part")
                    .collect();
                assert_eq!(parts.len(), 1, "fault message `{name}` has one part");
                for part in parts {
                    assert!(
                        part.attr("type").is_none(),
                        "fault part of `{name}` uses type"
                    );
                    assert_eq!(d.part_element(part), (API_NS.to_string(), name.to_string()));
                }
                faults += 1;
            }
            for header in op
                .descendants()
                .into_iter()
                .filter(|e| e.is(soap, "header") || e.is(soap, "headerfault"))
            {
                let message = d.message(header);
                let part_name = header.attr("part").expect("header@part");
                let part = message
                    .children_named(WSDL, "part")
                    .find(|p| p.attr("name") == Some(part_name))
                    .expect("the header's part");
                d.part_element(part);
            }
        }
    }
    // UpdateUserPassword and GetUserPasswordStatus: five each; UpdateUserPasswords:
    // three (an item's failure is in its result, not a fault).
    assert_eq!(
        faults,
        2 * (5 + 5 + 3 + 4),
        "every operation's faults in both bindings"
    );
}

/// R2306: a wsdl:message MUST NOT specify both type and element attributes on one wsdl:part.
#[test]
fn r2306_no_part_has_both_type_and_element() {
    let app = spawn_app();
    let d = description(&app);
    let parts: Vec<_> = d
        .definitions()
        .children_named(WSDL, "message")
        .flat_map(|m| m.children_named(WSDL, "part"))
        .collect();
    assert_eq!(
        parts.len(),
        4 * 2 + 5,
        "four operations' input and output, five faults"
    );
    for part in parts {
        assert!(
            part.attr("type").is_some() != part.attr("element").is_some(),
            "part {:?} has exactly one of type and element",
            part.attr("name")
        );
    }
}

// --------------------------------------------------------------------------------- port types

/// R2303: a DESCRIPTION MUST NOT use Solicit-Response or Notification operations. Every
/// operation here is request-response (so the one-way rules R2714/R2727/R1112 never apply),
/// and the service answers the request with an envelope.
#[test]
fn r2303_every_operation_is_request_response_and_answered_with_an_envelope() {
    let app = spawn_app();
    let d = description(&app);
    for port_type in d.definitions().children_named(WSDL, "portType") {
        for op in port_type.children_named(WSDL, "operation") {
            let flow: Vec<&str> = op
                .children
                .iter()
                .filter(|c| !c.is(WSDL, "documentation"))
                .map(|c| c.local.as_str())
                .collect();
            assert_eq!(
                flow.first(),
                Some(&"input"),
                "{:?}: {flow:?}",
                op.attr("name")
            );
            assert_eq!(
                flow.get(1),
                Some(&"output"),
                "{:?}: {flow:?}",
                op.attr("name")
            );
            assert!(flow[2..].iter().all(|l| *l == "fault"), "{flow:?}");
        }
    }
    let reply = app.change(Soap::V11, ADMIN, LEARNER.0, STRONG);
    assert!(reply.is_success(), "{}", reply.body);
    let doc = parse(&reply.body);
    assert_eq!(
        body(&doc).children.len(),
        1,
        "the output travels back in the response"
    );
}

/// R2304: a wsdl:portType MUST have operations with distinct values for their name attributes
/// (no overloading).
#[test]
fn r2304_operation_names_are_unique_in_each_port_type() {
    let app = spawn_app();
    let d = description(&app);
    for port_type in d.definitions().children_named(WSDL, "portType") {
        let names: Vec<_> = port_type
            .children_named(WSDL, "operation")
            .map(|o| o.attr("name").expect("operation@name"))
            .collect();
        let unique: HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert!(names.contains(&"UpdateUserPassword"));
    }
}

// ----------------------------------------------------------------------------------- bindings

/// R2401: a wsdl:binding MUST use WSDL SOAP Binding as defined in WSDL 1.1 Section 3.
///
/// The SOAP 1.1 binding does. The contract (§2) also publishes a SOAP 1.2 binding, written
/// with the W3C "WSDL 1.1 binding for SOAP 1.2" extension; BP 1.1 profiles SOAP 1.1 only, so a
/// conformance claim covers the SOAP 1.1 binding and its port, and a strict BP 1.1 analyser
/// flags the SOAP 1.2 binding under R2401. That binding is deliberate, not a defect.
#[test]
fn r2401_the_soap_1_1_binding_uses_the_wsdl_1_1_soap_binding() {
    let app = spawn_app();
    let d = description(&app);
    let binding = d.soap11_binding();
    assert!(binding.child(SOAPBIND, "binding").is_some());
    let kinds: Vec<_> = d.bindings().into_iter().map(|(_, ns)| ns).collect();
    assert_eq!(
        kinds,
        [SOAPBIND, SOAP12BIND],
        "a SOAP 1.1 and the contract's SOAP 1.2 binding"
    );
    for (op, _) in d.operations(binding) {
        for el in op.descendants().into_iter().skip(1) {
            let ns = el.ns.as_deref().unwrap_or_default();
            assert!(
                ns == WSDL || ns == SOAPBIND,
                "the SOAP 1.1 binding uses {} from {ns}",
                el.local
            );
        }
    }
    let port = d
        .definitions()
        .descendants()
        .into_iter()
        .find(|e| {
            e.is(WSDL, "port")
                && e.attr("binding")
                    .is_some_and(|q| e.resolve(q).1 == binding.attr("name").unwrap_or_default())
        })
        .expect("a port for the SOAP 1.1 binding");
    assert!(port.child(SOAPBIND, "address").is_some());
}

/// R2701: a binding's soapbind:binding MUST specify the transport attribute.
/// R2702: its value MUST be "http://schemas.xmlsoap.org/soap/http" (the SOAP 1.2 binding
/// extension uses the same URI for HTTP).
#[test]
fn r2701_r2702_every_binding_declares_the_soap_over_http_transport() {
    let app = spawn_app();
    let d = description(&app);
    for (binding, soap) in d.bindings() {
        let ext = binding.child(soap, "binding").expect("soap binding");
        assert_eq!(
            ext.attr("transport"),
            Some(SOAP_HTTP),
            "{:?}",
            binding.attr("name")
        );
    }
}

/// R2705: a wsdl:binding MUST be either an rpc-literal or a document-literal binding.
/// R2706: it MUST use "literal" for the use attribute of every soapbind:body, soapbind:fault,
/// soapbind:header and soapbind:headerfault (R2707 would read an absent one as literal; the
/// WSDL spells it out for older tools). R2723: a soapbind:fault's use, if present, MUST be
/// "literal". R2747: soapbind:binding's style, if present, MUST be "rpc" or "document".
/// This service is document/literal throughout.
#[test]
fn r2705_r2706_r2723_r2747_every_binding_is_document_literal() {
    let app = spawn_app();
    let d = description(&app);
    for (binding, soap) in d.bindings() {
        let name = binding.attr("name").unwrap_or_default();
        let ext = binding.child(soap, "binding").expect("soap binding");
        assert_eq!(ext.attr("style"), Some("document"), "{name}");
        let mut uses = 0;
        let mut expected = 0;
        for (op, abstract_op) in d.operations(binding) {
            expected += 2 + abstract_op.children_named(WSDL, "fault").count();
            let soap_op = op.child(soap, "operation").expect("soap operation");
            assert!(
                soap_op.attr("style").is_none_or(|s| s == "document"),
                "{name}: operation style {:?}",
                soap_op.attr("style")
            );
            for el in op.descendants() {
                if el.ns.as_deref() == Some(soap)
                    && matches!(
                        el.local.as_str(),
                        "body" | "fault" | "header" | "headerfault"
                    )
                {
                    assert_eq!(el.attr("use"), Some("literal"), "{name}: soap {}", el.local);
                    uses += 1;
                }
            }
        }
        assert_eq!(uses, expected, "{name}: input, output and every fault");
    }
}

/// R2710: the operations in a wsdl:binding MUST result in operation signatures (the qualified
/// name of the Body's child element) that differ from one another — the service dispatches on
/// the Body's first element (contract §2).
#[test]
fn r2710_operation_signatures_are_unique_in_each_binding() {
    let app = spawn_app();
    let d = description(&app);
    for (binding, _) in d.bindings() {
        let mut signatures = HashSet::new();
        for (_, abstract_op) in d.operations(binding) {
            let message = d.message(abstract_op.child(WSDL, "input").expect("input"));
            let parts: Vec<_> = message
                .children_named(WSDL, "part")
                .map(|p| d.part_element(p))
                .collect();
            assert!(
                signatures.insert(parts.clone()),
                "duplicate signature {parts:?}"
            );
        }
        assert!(signatures.contains(&vec![(
            API_NS.to_string(),
            "UpdateUserPasswordRequest".to_string()
        )]));
    }
}

/// R2711: a DESCRIPTION SHOULD NOT have more than one wsdl:port with the same location in its
/// soapbind:address. (The SOAP 1.2 port shares the URL through soap12:address, which this rule
/// does not count: the service tells the versions apart by the envelope's namespace.)
#[test]
fn r2711_no_two_soap_1_1_ports_share_a_location() {
    let app = spawn_app();
    let d = description(&app);
    let locations: Vec<_> = d
        .definitions()
        .descendants()
        .into_iter()
        .filter(|e| e.is(SOAPBIND, "address"))
        .map(|a| a.attr("location").expect("address@location"))
        .collect();
    let unique: HashSet<_> = locations.iter().collect();
    assert_eq!(unique.len(), locations.len(), "{locations:?}");
    assert_eq!(locations.len(), 1);
}

/// Not a numbered BP requirement but what every client relies on (WSDL 1.1 §3.8, contract
/// §2): each port's address is the endpoint the client fetched the WSDL from.
#[test]
fn every_port_address_is_the_endpoint_the_client_used() {
    let app = spawn_app();
    let d = description(&app);
    let addresses: Vec<_> = d
        .definitions()
        .descendants()
        .into_iter()
        .filter(|e| e.is(SOAPBIND, "address") || e.is(SOAP12BIND, "address"))
        .map(|a| a.attr("location").expect("address@location"))
        .collect();
    assert_eq!(addresses, [app.endpoint.as_str(), app.endpoint.as_str()]);
}

/// R2716: a document-literal binding MUST NOT have the namespace attribute on its
/// soapbind:body, soapbind:header, soapbind:headerfault and soapbind:fault elements.
#[test]
fn r2716_doc_literal_soap_elements_have_no_namespace_attribute() {
    let app = spawn_app();
    let d = description(&app);
    for (binding, soap) in d.bindings() {
        for el in binding.descendants() {
            if el.ns.as_deref() == Some(soap)
                && matches!(
                    el.local.as_str(),
                    "body" | "fault" | "header" | "headerfault"
                )
            {
                assert!(
                    el.attr("namespace").is_none(),
                    "{:?}: soap {} has a namespace",
                    binding.attr("name"),
                    el.local
                );
            }
        }
    }
}

/// R2718: a wsdl:binding MUST have the same set of wsdl:operations as the wsdl:portType it
/// refers to. R2209: it SHOULD bind every part of every message of that portType.
#[test]
fn r2718_r2209_each_binding_binds_exactly_its_port_types_operations_and_parts() {
    let app = spawn_app();
    let d = description(&app);
    for (binding, soap) in d.bindings() {
        let port_type = d.port_type(binding);
        let names = |parent: &Element| -> BTreeSet<String> {
            parent
                .children_named(WSDL, "operation")
                .map(|o| o.attr("name").unwrap_or_default().to_string())
                .collect()
        };
        assert_eq!(names(binding), names(port_type));
        for (op, abstract_op) in d.operations(binding) {
            for io in ["input", "output"] {
                let (bound, declared) = (op.child(WSDL, io), abstract_op.child(WSDL, io));
                assert_eq!(bound.is_some(), declared.is_some(), "{io}");
                let (Some(bound), Some(declared)) = (bound, declared) else {
                    continue;
                };
                assert_eq!(
                    bound.attr("name"),
                    declared.attr("name"),
                    "{io} names match"
                );
                let body = bound.child(soap, "body").expect("soap body");
                // No parts attribute: every part of the message goes in the Body.
                assert!(body.attr("parts").is_none(), "{io} binds all its parts");
            }
            let faults = |parent: &Element| -> BTreeSet<String> {
                parent
                    .children_named(WSDL, "fault")
                    .map(|f| f.attr("name").unwrap_or_default().to_string())
                    .collect()
            };
            assert_eq!(faults(op), faults(abstract_op), "every fault is bound");
        }
    }
}

/// R2721: a wsdl:binding MUST have the name attribute on every soapbind:fault.
/// R2754: that name MUST match the name of its parent wsdl:fault. Together with R2718 this
/// gives every wsdl:fault of the portType operation a same-named soap fault in each binding,
/// so generated clients raise typed exceptions (contract §4).
#[test]
fn r2721_r2754_every_port_type_fault_has_a_same_named_soap_fault_in_each_binding() {
    let app = spawn_app();
    let d = description(&app);
    for (binding, soap) in d.bindings() {
        for (op, abstract_op) in d.operations(binding) {
            let declared: Vec<_> = abstract_op
                .children_named(WSDL, "fault")
                .map(|f| f.attr("name").expect("fault@name"))
                .collect();
            let expected: &[&str] = match abstract_op.attr("name") {
                // An item's failure is in its result item.
                Some("UpdateUserPasswords") => &[
                    "WrongParametersFault",
                    "AuthenticationFailedFault",
                    "ServerBusyFault",
                ],
                Some("ResetUserPasswords") => &[
                    "WrongParametersFault",
                    "AuthenticationFailedFault",
                    "PermissionDeniedFault",
                    "ServerBusyFault",
                ],
                _ => &[
                    "WrongParametersFault",
                    "AuthenticationFailedFault",
                    "UnknownUserFault",
                    "PermissionDeniedFault",
                    "ServerBusyFault",
                ],
            };
            assert_eq!(declared, expected);
            for name in declared {
                let fault = op
                    .children_named(WSDL, "fault")
                    .find(|f| f.attr("name") == Some(name))
                    .unwrap_or_else(|| panic!("{:?} binds no fault {name}", binding.attr("name")));
                let soap_faults: Vec<_> = fault.children_named(soap, "fault").collect();
                assert_eq!(soap_faults.len(), 1, "{name}");
                assert_eq!(soap_faults[0].attr("name"), Some(name));
            }
        }
    }
}

/// R2744: a request MUST carry a SOAPAction header whose quoted value equals the soapAction of
/// soapbind:operation (R1109: a quoted string). The service accepts exactly that.
#[test]
fn r2744_a_request_with_the_wsdls_quoted_soap_action_is_served() {
    let app = spawn_app();
    let d = description(&app);
    let binding = d.soap11_binding();
    let (op, _) = d
        .operations(binding)
        .into_iter()
        .next()
        .expect("an operation");
    let action = op
        .child(SOAPBIND, "operation")
        .and_then(|o| o.attr("soapAction"))
        .expect("soapAction");
    assert!(!action.is_empty());
    let reply = app.post_raw(
        Soap::V11.envelope(&request(ACCOUNT, ADMIN.1, ADMIN.2, LEARNER.0, STRONG)),
        &[
            ("Content-Type", Soap::V11.content_type()),
            ("SOAPAction", &format!("\"{action}\"")),
        ],
    );
    assert!(reply.is_success(), "{}", reply.body);
}

// ============================================================================ the messages

/// R1005: an ENVELOPE MUST NOT contain soap:encodingStyle attributes on elements in the SOAP
/// envelope namespace. R1006: nor on any child of soap:Body. R1007: nor (rpc-literal) on
/// grandchildren. R2113: an ENVELOPE MUST NOT include soapenc:arrayType. Checked stricter —
/// no encodingStyle or SOAP-encoding attribute anywhere in any answer nor in the WSDL.
#[test]
fn r1005_r1006_r1007_r2113_no_answer_and_no_description_uses_soap_encoding() {
    let app = spawn_app();
    let d = description(&app);
    let answers = soap11_answers(&app);
    let docs: Vec<(&str, Document)> = answers
        .iter()
        .map(|(what, reply)| (*what, parse(&reply.body)))
        .chain([(
            "WSDL",
            parse(std::str::from_utf8(&d.wsdl_bytes).expect("UTF-8")),
        )])
        .collect();
    for (what, doc) in &docs {
        for el in doc.root.descendants() {
            for a in &el.attrs {
                assert_ne!(a.local, "encodingStyle", "{what}: on <{}>", el.local);
                assert_ne!(a.local, "arrayType", "{what}: on <{}>", el.local);
                assert_ne!(a.ns.as_deref(), Some(SOAPENC), "{what}: on <{}>", el.local);
            }
        }
    }
}

/// R1008: an ENVELOPE MUST NOT contain a Document Type Declaration. R1009: an ENVELOPE MUST
/// NOT contain Processing Instructions. (The XML declaration is not a PI.) The WSDL and the
/// schema are held to the same, since SOAP stacks load them with the same hardened parsers.
#[test]
fn r1008_r1009_no_answer_or_description_has_a_doctype_or_processing_instruction() {
    let app = spawn_app();
    let d = description(&app);
    let mut docs: Vec<(&str, Document)> = soap11_answers(&app)
        .into_iter()
        .map(|(what, reply)| (what, parse(&reply.body)))
        .collect();
    docs.push(("WSDL", d.wsdl));
    docs.push(("XSD", d.xsd));
    for (what, doc) in docs {
        assert!(!doc.doctype, "{what} has a DOCTYPE");
        assert!(
            doc.processing_instructions.is_empty(),
            "{what} has PIs {:?}",
            doc.processing_instructions
        );
    }
}

/// R1011: an ENVELOPE MUST NOT have element children of soap:Envelope following soap:Body.
/// SSBP R9700: a MESSAGE MUST serialise the envelope as the exclusive payload of the HTTP
/// entity-body — nothing follows the Envelope either.
#[test]
fn r1011_r9700_nothing_follows_the_body_or_the_envelope() {
    let app = spawn_app();
    for (what, reply) in soap11_answers(&app) {
        let doc = parse(&reply.body);
        assert!(doc.root.is(SOAP11, "Envelope"), "{what}: {}", reply.body);
        let children: Vec<_> = doc.root.children.iter().map(Element::name).collect();
        let body = format!("{{{SOAP11}}}Body");
        let header = format!("{{{SOAP11}}}Header");
        assert!(
            children == [body.clone()] || children == [header, body],
            "{what}: Envelope children {children:?}"
        );
        assert!(doc.after_root.is_empty(), "{what}: {:?}", doc.after_root);
        assert!(doc.root.text.trim().is_empty(), "{what}: text in Envelope");
    }
}

/// SSBP R1012: a MESSAGE MUST serialise the envelope in UTF-8 or UTF-16. SSBP R1018: its
/// Content-Type MUST give the correct encoding in a charset parameter. SSBP R9701: the
/// envelope MUST be XML 1.0.
#[test]
fn r1012_r1018_r9701_answers_are_xml_1_0_in_utf_8_with_a_charset() {
    let app = spawn_app();
    let ok = request(ACCOUNT, ADMIN.1, ADMIN.2, LEARNER.0, STRONG);
    let fault = request(ACCOUNT, ADMIN.1, ADMIN.2, "u-nobody", STRONG);
    for operation in [ok, fault] {
        let resp = app
            .client
            .post(&app.endpoint)
            .header("Content-Type", Soap::V11.content_type())
            .body(Soap::V11.envelope(&operation))
            .send()
            .expect("request sent");
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let bytes = resp.bytes().expect("body");
        let text = std::str::from_utf8(&bytes).expect("the envelope is UTF-8");
        assert!(
            content_type.replace(' ', "").contains(";charset=utf-8"),
            "Content-Type {content_type}"
        );
        let doc = parse(text);
        let (version, encoding) = doc.declaration.expect("an XML declaration");
        assert_eq!(version, "1.0");
        assert!(encoding.is_none_or(|e| e.eq_ignore_ascii_case("UTF-8")));
    }
}

/// SSBP R9702: a MESSAGE MUST have a Content-Type. SSBP R9703: its media type MUST be
/// "text/xml" (SOAP 1.1 §6.1.1) — for the success and for every fault.
#[test]
fn r9702_r9703_soap_1_1_answers_are_text_xml() {
    let app = spawn_app();
    for (what, reply) in soap11_answers(&app) {
        let media_type = reply
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        assert!(
            media_type.eq_ignore_ascii_case("text/xml"),
            "{what}: Content-Type {:?}",
            reply.content_type
        );
    }
}

/// SSBP R9704: an ENVELOPE SHOULD NOT contain the namespace declaration
/// `xmlns:xml="http://www.w3.org/XML/1998/namespace"`.
#[test]
fn r9704_answers_do_not_declare_the_xml_prefix() {
    let app = spawn_app();
    for (what, reply) in soap11_answers(&app) {
        let doc = parse(&reply.body);
        for el in doc.root.descendants() {
            for (prefix, ns) in &el.declared {
                assert!(prefix != "xml" && ns != XML_NS, "{what}: {}", reply.body);
            }
        }
    }
}

/// R1013: an ENVELOPE containing a soap:mustUnderstand attribute MUST only use "0" and "1".
/// R1032: soap:Envelope, soap:Header and soap:Body MUST NOT have attributes in the SOAP
/// envelope namespace.
#[test]
fn r1013_r1032_soap_attributes_appear_only_where_allowed() {
    let app = spawn_app();
    for (what, reply) in soap11_answers(&app) {
        let doc = parse(&reply.body);
        for el in doc.root.descendants() {
            let soap_element = el.ns.as_deref() == Some(SOAP11)
                && matches!(el.local.as_str(), "Envelope" | "Header" | "Body");
            for a in el.attrs.iter().filter(|a| a.ns.as_deref() == Some(SOAP11)) {
                assert!(!soap_element, "{what}: soap:{} has @{}", el.local, a.local);
                if a.local == "mustUnderstand" {
                    assert!(a.value == "0" || a.value == "1", "{what}: {}", a.value);
                }
            }
        }
    }
}

/// R1014: the children of soap:Body in an ENVELOPE MUST be namespace qualified. Below them the
/// schema's elementFormDefault="qualified" holds too: the result's and each detail entry's
/// descendants are all in the API namespace (SOAP 1.1's own faultcode, faultstring and detail
/// are unqualified by R1001).
#[test]
fn r1014_body_children_and_their_content_are_namespace_qualified() {
    let app = spawn_app();
    for (what, reply) in soap11_answers(&app) {
        let doc = parse(&reply.body);
        let body = body(&doc);
        assert!(!body.children.is_empty(), "{what}: empty Body");
        for child in &body.children {
            assert!(child.ns.is_some(), "{what}: unqualified <{}>", child.local);
            let payload: Vec<&Element> = if child.is(SOAP11, "Fault") {
                child
                    .child_unqualified("detail")
                    .map(|d| d.children.iter().flat_map(Element::descendants).collect())
                    .unwrap_or_default()
            } else {
                child.descendants()
            };
            for el in payload {
                assert_eq!(el.ns.as_deref(), Some(API_NS), "{what}: <{}>", el.local);
            }
        }
    }
}

impl Element {
    fn child_unqualified(&self, local: &str) -> Option<&Element> {
        self.children
            .iter()
            .find(|c| c.ns.is_none() && c.local == local)
    }
}

/// R1000: a soap:Fault MUST NOT have element children other than faultcode, faultstring,
/// faultactor and detail. R1001: those children MUST be unqualified.
#[test]
fn r1000_r1001_fault_children_are_the_unqualified_soap_1_1_ones() {
    let app = spawn_app();
    for (what, reply) in faults(soap11_answers(&app)) {
        let doc = parse(&reply.body);
        let fault = body(&doc).child(SOAP11, "Fault").unwrap_or_else(|| {
            panic!("{what}: no soap:Fault in {}", reply.body);
        });
        let children: Vec<_> = fault
            .children
            .iter()
            .map(|c| (c.ns.clone(), c.local.as_str()))
            .collect();
        for (ns, local) in &children {
            assert_eq!(*ns, None, "{what}: {local} is qualified");
            assert!(
                ["faultcode", "faultstring", "faultactor", "detail"].contains(local),
                "{what}: <{local}> in soap:Fault"
            );
        }
        let locals: Vec<_> = children.iter().map(|(_, l)| *l).collect();
        assert_eq!(&locals[..2], ["faultcode", "faultstring"], "{what}");
    }
}

/// R1004: a faultcode SHOULD be one of SOAP 1.1's fault codes or a namespace-qualified code —
/// here always a QName whose prefix is bound to the SOAP 1.1 envelope namespace (contract §4:
/// `SOAP-ENV:Client`, never a bare `Client`). R1031: it SHOULD NOT use the "dot" notation.
#[test]
fn r1004_r1031_faultcode_is_a_qualified_soap_code_without_dots() {
    let app = spawn_app();
    for (what, reply) in faults(soap11_answers(&app)) {
        let doc = parse(&reply.body);
        let fault = body(&doc).child(SOAP11, "Fault").expect("a Fault");
        let code = fault.child_unqualified("faultcode").expect("faultcode");
        assert!(
            code.text.trim().contains(':'),
            "{what}: unqualified {:?}",
            code.text
        );
        let (ns, local) = code.resolve(&code.text);
        assert_eq!(ns.as_deref(), Some(SOAP11), "{what}: {:?}", code.text);
        assert!(
            ["Client", "Server", "VersionMismatch", "MustUnderstand"].contains(&local.as_str()),
            "{what}: {local}"
        );
        assert!(!local.contains('.'), "{what}: dot notation {local}");
    }
}

/// R2712: a document-literal response MUST be an envelope whose soap:Body child is an instance
/// of the global element the output message's part names. R2301: the Body's children follow
/// the order of the message's parts (here, the one part).
#[test]
fn r2712_r2301_the_success_body_holds_the_output_parts_element() {
    let app = spawn_app();
    let d = description(&app);
    let binding = d.soap11_binding();
    let (_, abstract_op) = d
        .operations(binding)
        .into_iter()
        .next()
        .expect("an operation");
    let output = d.message(abstract_op.child(WSDL, "output").expect("output"));
    let expected: Vec<(String, String)> = output
        .children_named(WSDL, "part")
        .map(|p| d.part_element(p))
        .collect();
    let reply = app.change(Soap::V11, ADMIN, LEARNER.0, STRONG);
    assert!(reply.is_success(), "{}", reply.body);
    let doc = parse(&reply.body);
    let got: Vec<(String, String)> = body(&doc)
        .children
        .iter()
        .map(|c| (c.ns.clone().unwrap_or_default(), c.local.clone()))
        .collect();
    assert_eq!(got, expected);
    let result = &body(&doc).children[0];
    let success: Vec<_> = result.children_named(API_NS, "success").collect();
    assert_eq!(success.len(), 1);
    assert_eq!(success[0].text, "true");
}

/// R2740: a wsdl:binding SHOULD contain a soapbind:fault describing each known fault. Every
/// typed fault the service sends carries, as its detail entry, the element of a fault message
/// that the SOAP 1.1 binding binds.
#[test]
fn r2740_every_typed_fault_sent_is_described_by_a_soap_fault() {
    let app = spawn_app();
    let d = description(&app);
    let binding = d.soap11_binding();
    let mut described = BTreeMap::new();
    for (op, abstract_op) in d.operations(binding) {
        for fault in op.children_named(WSDL, "fault") {
            let name = fault.attr("name").expect("fault@name");
            assert!(fault.child(SOAPBIND, "fault").is_some());
            let abstract_fault = abstract_op
                .children_named(WSDL, "fault")
                .find(|f| f.attr("name") == Some(name))
                .expect("abstract fault");
            for part in d.message(abstract_fault).children_named(WSDL, "part") {
                described.insert(d.part_element(part), name.to_string());
            }
        }
    }
    let answers = soap11_answers(&app);
    for (what, reply) in typed_faults(&answers) {
        let doc = parse(&reply.body);
        let fault = body(&doc).child(SOAP11, "Fault").expect("Fault");
        let detail = fault.child_unqualified("detail").expect("detail");
        assert_eq!(detail.children.len(), 1, "{what}: one detail entry");
        let entry = &detail.children[0];
        let key = (entry.ns.clone().unwrap_or_default(), entry.local.clone());
        assert_eq!(
            described.get(&key).map(String::as_str),
            Some(what),
            "{key:?}"
        );
    }
}

/// The answer's envelope is in the request's SOAP version: a SOAP 1.1 request gets a SOAP 1.1
/// envelope (contract §2; BP 1.1 knows no other).
#[test]
fn soap_1_1_requests_are_answered_in_soap_1_1() {
    let app = spawn_app();
    for (what, reply) in soap11_answers(&app) {
        let doc = parse(&reply.body);
        assert!(
            doc.root.is(SOAP11, "Envelope"),
            "{what}: {}",
            doc.root.name()
        );
        assert!(
            doc.root
                .descendants()
                .iter()
                .all(|e| e.ns.as_deref() != Some(SOAP12)),
            "{what}: SOAP 1.2 elements in a SOAP 1.1 answer"
        );
    }
}

// ================================================================================ HTTP

/// R1111: an INSTANCE SHOULD use "200 OK" for a response envelope that is not a fault.
#[test]
fn r1111_a_successful_answer_is_http_200() {
    let app = spawn_app();
    let reply = app.change(Soap::V11, ADMIN, LEARNER.0, STRONG);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.is_success());
}

/// R1126: an INSTANCE MUST use "500 Internal Server Error" if the response message is a SOAP
/// Fault — every typed fault and every envelope-level fault over SOAP 1.1.
///
/// Two faults deviate on purpose, by the contract's own rules (§2, §4), and are pinned in
/// faults.rs and envelope.rs: `ServerBusyFault` is sent with 503 and `Retry-After` so load
/// balancers and clients back off, and a body over the size limit gets 413.
#[test]
fn r1126_every_soap_1_1_fault_is_http_500() {
    let app = spawn_app();
    for (what, reply) in faults(soap11_answers(&app)) {
        assert!(reply.fault_code().is_some(), "{what}: {}", reply.body);
        assert_eq!(reply.status, 500, "{what}: {}", reply.body);
    }
}

/// R1141: a MESSAGE MUST be sent using HTTP/1.1 or HTTP/1.0. R1140: it SHOULD use HTTP/1.1.
#[test]
fn r1140_r1141_answers_are_http_1_1() {
    let app = spawn_app();
    let resp = app
        .client
        .post(&app.endpoint)
        .header("Content-Type", Soap::V11.content_type())
        .body(Soap::V11.envelope(&request(ACCOUNT, ADMIN.1, ADMIN.2, "u-nobody", STRONG)))
        .send()
        .expect("request sent");
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    let resp = app
        .client
        .get(format!("{}?wsdl", app.endpoint))
        .send()
        .expect("request sent");
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
}

/// R1114: an INSTANCE SHOULD use "405 Method Not Allowed" if a request's method is not POST.
/// GET is the one exception: it serves the WSDL and schemas (contract §2).
#[test]
fn r1114_other_methods_than_post_and_get_are_405() {
    let app = spawn_app();
    for method in [
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        // Bodiless: actix answers 405 without reading a body, then drops the connection,
        // which a pooled client could otherwise reuse for the next method.
        let resp = app
            .client
            .request(method.clone(), &app.endpoint)
            .send()
            .expect("request sent");
        assert_eq!(resp.status().as_u16(), 405, "{method}");
    }
}

/// R1121: an INSTANCE SHOULD NOT require consumer support for cookies to function correctly —
/// the service sets none.
#[test]
fn r1121_no_answer_sets_a_cookie() {
    let app = spawn_app();
    let mut replies = soap11_answers(&app);
    replies.push(("WSDL", app.get("/soap?wsdl")));
    for (what, reply) in replies {
        assert!(reply.headers.get("set-cookie").is_none(), "{what}");
    }
}

// ============================================================================ the receiver

/// SSBP R1010: a RECEIVER MUST accept envelopes that contain an XML declaration. SSBP R4001:
/// a RECEIVER MUST accept envelopes that include the Unicode Byte Order Mark.
#[test]
fn r1010_r4001_an_xml_declaration_and_a_byte_order_mark_are_accepted() {
    let app = spawn_app();
    let envelope = Soap::V11.envelope(&request(ACCOUNT, ADMIN.1, ADMIN.2, LEARNER.0, STRONG));
    assert!(envelope.starts_with("<?xml"));
    let mut with_bom = "\u{feff}".as_bytes().to_vec();
    with_bom.extend(
        Soap::V11
            .envelope(&request(ACCOUNT, ADMIN.1, ADMIN.2, LEARNER2.0, STRONG))
            .into_bytes(),
    );
    for body in [envelope.into_bytes(), with_bom] {
        let reply = app.post(Soap::V11, body);
        assert!(reply.is_success(), "{}", reply.body);
    }
}

/// SSBP R1019: a RECEIVER MUST ignore the encoding pseudo-attribute of the envelope's XML
/// declaration: the Content-Type's charset (R1018) decides. A UTF-8 body labelled
/// ISO-8859-1 in its declaration sets the password the UTF-8 bytes spell.
#[test]
fn r1019_the_charset_parameter_wins_over_the_xml_declaration() {
    let app = spawn_app();
    let new_password = format!("{STRONG}-ü");
    let body = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1"?>
<soap:Envelope xmlns:soap="{SOAP11}"><soap:Body>{}</soap:Body></soap:Envelope>"#,
        request(ACCOUNT, ADMIN.1, ADMIN.2, LEARNER.0, &new_password)
    );
    let reply = app.post_raw(body, &[("Content-Type", "text/xml; charset=utf-8")]);
    assert!(reply.is_success(), "{}", reply.body);
    // The learner signs in with the password as UTF-8 meant it.
    let learner = (LEARNER.0, LEARNER.1, new_password.as_str());
    let reply = app.change(Soap::V11, learner, LEARNER.0, &format!("{STRONG}-next"));
    assert!(reply.is_success(), "{}", reply.body);
}

/// R1015: a RECEIVER MUST generate a fault on a message whose document element is called
/// Envelope but is not in the SOAP 1.1 envelope namespace — a SOAP 1.1 VersionMismatch.
#[test]
fn r1015_an_envelope_in_another_namespace_gets_a_fault() {
    let app = spawn_app();
    let reply = app.post(
        Soap::V11,
        foreign_envelope(&request(ACCOUNT, ADMIN.1, ADMIN.2, LEARNER.0, STRONG)),
    );
    assert_bare_fault(&reply, Soap::V11, 500, "VersionMismatch");
    assert!(parse(&reply.body).root.is(SOAP11, "Envelope"));
}

/// R1027: a RECEIVER MUST generate a soap:MustUnderstand fault for a mandatory header block
/// targeted at it that it does not understand. R1025: it MUST appear that all mustUnderstand
/// checking happens before any processing — the change in that Body is not made.
#[test]
fn r1025_r1027_an_unknown_mandatory_header_faults_before_anything_is_processed() {
    let app = spawn_app();
    let change = request(ACCOUNT, ADMIN.1, ADMIN.2, LEARNER.0, STRONG);
    let reply = app.post(Soap::V11, with_mandatory_header(&change));
    assert_bare_fault(&reply, Soap::V11, 500, "MustUnderstand");
    // Had it been applied, the same change again would be SAME_AS_CURRENT.
    let reply = app.call(Soap::V11, &change);
    assert!(reply.is_success(), "{}", reply.body);
}

/// R2724: an INSTANCE that receives an envelope inconsistent with its WSDL SHOULD answer a
/// "Client" fault, unless a "MustUnderstand" or "VersionMismatch" fault is generated.
/// R2725: it MUST check for VersionMismatch, MustUnderstand and Client conditions in that
/// order.
#[test]
fn r2724_r2725_inconsistent_envelopes_fault_version_mismatch_then_must_understand_then_client() {
    let app = spawn_app();
    // No userId: inconsistent with the schema the WSDL imports.
    let inconsistent = format!(
        r#"<UpdateUserPasswordRequest xmlns="{API_NS}"><credentials><accountUrl>{ACCOUNT}</accountUrl><email>{}</email><password>{}</password></credentials><password>{STRONG}</password></UpdateUserPasswordRequest>"#,
        ADMIN.1, ADMIN.2
    );
    let reply = app.call(Soap::V11, &inconsistent);
    assert_eq!(
        reply.fault_code().as_deref(),
        Some("SOAP-ENV:Client"),
        "{}",
        reply.body
    );
    assert_eq!(reply.status, 500);

    let reply = app.post(Soap::V11, with_mandatory_header(&inconsistent));
    assert_bare_fault(&reply, Soap::V11, 500, "MustUnderstand");

    let foreign = format!(
        r#"<e:Envelope xmlns:e="urn:example:not-soap"><e:Header><t:Trace xmlns:t="urn:example:trace" e:mustUnderstand="1"/></e:Header><e:Body>{inconsistent}</e:Body></e:Envelope>"#
    );
    let reply = app.post(Soap::V11, foreign);
    assert_bare_fault(&reply, Soap::V11, 500, "VersionMismatch");
}
