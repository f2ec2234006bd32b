//! The namespace-aware pre-pass: one streaming read of the body that checks the
//! envelope, enforces the structural limits, honours `mustUnderstand` and identifies
//! the operation by the Body's first element, keeping only that element's subtree.

use std::borrow::Cow;

use encoding_rs::{Encoding, REPLACEMENT, UTF_8, UTF_16BE, UTF_16LE};
use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};

use super::ops::{self, OperationSpec};
use super::{API_NS, SOAP11_ENV_NS, SOAP12_ENV_NS, SoapVersion};

/// Structural bounds on a request. A single call has about a dozen elements; a batch
/// about six per item.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_depth: usize,
    pub max_elements: usize,
    pub max_attributes: usize,
    /// Items an `UpdateUserPasswords` call may hold (`--batch-max`).
    pub batch_max: usize,
}

/// The default `--batch-max` (contract §11.2).
pub const DEFAULT_BATCH_MAX: usize = 1000;

impl Limits {
    /// The bounds for batches of up to `batch_max` items: room for eight elements per
    /// item besides a single call's 256.
    pub fn for_batch(batch_max: usize) -> Self {
        Limits {
            max_depth: 32,
            max_elements: 256 + 8 * batch_max,
            max_attributes: 32,
            batch_max,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::for_batch(DEFAULT_BATCH_MAX)
    }
}

/// A namespace-resolved element of the operation's subtree.
///
/// Its text may be a password (the caller's, the new one, a token's) until `wire` moves it
/// into a `SecretString`: so `Debug` never shows text, and a dropped element wipes its own.
#[derive(Default)]
pub struct Element {
    /// The namespace URI, or `None` for an unqualified element.
    pub ns: Option<String>,
    pub local: String,
    /// Attributes as (namespace, local name, value); namespace declarations excluded.
    pub attributes: Vec<(Option<String>, String, String)>,
    /// All character data directly inside the element (text, CDATA, references).
    pub text: String,
    pub children: Vec<Element>,
}

impl std::fmt::Debug for Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Element")
            .field("ns", &self.ns)
            .field("local", &self.local)
            .field("attributes", &self.attributes.len())
            .field(
                "text",
                &format_args!("[{} bytes redacted]", self.text.len()),
            )
            .field("children", &self.children)
            .finish()
    }
}

impl Drop for Element {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.text);
    }
}

impl Element {
    fn new(
        ns: Option<String>,
        local: String,
        attributes: Vec<(Option<String>, String, String)>,
    ) -> Self {
        Element {
            ns,
            local,
            attributes,
            text: String::new(),
            children: Vec::new(),
        }
    }

    /// True when the element holds non-whitespace text.
    pub fn has_text(&self) -> bool {
        !self.text.trim().is_empty()
    }

    /// The value of the attribute with this local name and no namespace.
    pub fn attribute(&self, local: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(ns, name, _)| ns.is_none() && name == local)
            .map(|(_, _, v)| v.as_str())
    }
}

/// The operation the Body's first element asks for (found in [`super::ops::OPERATIONS`]),
/// with that element's subtree.
#[derive(Debug)]
pub struct Operation {
    pub spec: &'static OperationSpec,
    pub element: Element,
}

impl Operation {
    pub fn name(&self) -> &'static str {
        self.spec.name
    }
}

/// A request that passed the pre-pass.
#[derive(Debug)]
pub struct ParsedEnvelope {
    pub version: SoapVersion,
    pub operation: Operation,
    /// The `wsse:Security` header block addressed to this service, if any.
    pub security: Option<Element>,
}

/// A qualified name, for the MustUnderstand fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualifiedName {
    pub ns: Option<String>,
    pub local: String,
}

/// Why a request was refused before reaching the operation. Each kind is one fault
/// without detail (contract §4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("The request is not well-formed XML")]
    NotXml,
    #[error("The request could not be decoded as text")]
    Undecodable,
    #[error("DOCTYPE declarations are not allowed")]
    Doctype,
    #[error("Processing instructions are not allowed")]
    ProcessingInstruction,
    #[error("The request is nested too deeply")]
    TooDeep,
    #[error("The request has too many elements")]
    TooManyElements,
    #[error("An element has too many attributes")]
    TooManyAttributes,
    #[error("The request has content after the envelope")]
    ContentAfterRoot,
    #[error("The request is not a SOAP envelope: {0}")]
    NotEnvelope(&'static str),
    #[error("Unknown operation")]
    UnknownOperation,
    #[error("The envelope namespace is neither SOAP 1.1 nor SOAP 1.2")]
    VersionMismatch,
    #[error("A mandatory header block was not understood")]
    MustUnderstand(Vec<QualifiedName>),
}

impl EnvelopeError {
    /// The outcome code written to the log line.
    pub fn code(&self) -> &'static str {
        match self {
            EnvelopeError::NotXml => "NOT_XML",
            EnvelopeError::Undecodable => "UNDECODABLE",
            EnvelopeError::Doctype => "DOCTYPE",
            EnvelopeError::ProcessingInstruction => "PROCESSING_INSTRUCTION",
            EnvelopeError::TooDeep => "TOO_DEEP",
            EnvelopeError::TooManyElements => "TOO_MANY_ELEMENTS",
            EnvelopeError::TooManyAttributes => "TOO_MANY_ATTRIBUTES",
            EnvelopeError::ContentAfterRoot => "CONTENT_AFTER_ROOT",
            EnvelopeError::NotEnvelope(_) => "NOT_ENVELOPE",
            EnvelopeError::UnknownOperation => "UNKNOWN_OPERATION",
            EnvelopeError::VersionMismatch => "VERSION_MISMATCH",
            EnvelopeError::MustUnderstand(_) => "MUST_UNDERSTAND",
        }
    }
}

/// An [`EnvelopeError`] with the SOAP version known at the time, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub version: Option<SoapVersion>,
    pub error: EnvelopeError,
}

/// Where the reader is in the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    BeforeRoot,
    Envelope,
    Header,
    HeaderBlock,
    Body,
    Operation,
    /// Inside the `wsse:Security` header block (captured like the operation).
    Security,
    OtherBodyContent,
    AfterRoot,
}

const MUST_UNDERSTAND: &str = "mustUnderstand";
/// WS-Security 1.0 (OASIS 2004) secext namespace.
pub const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
const SOAP11_ACTOR_NEXT: &str = "http://schemas.xmlsoap.org/soap/actor/next";
const SOAP12_ROLE_NEXT: &str = "http://www.w3.org/2003/05/soap-envelope/role/next";
const SOAP12_ROLE_ULTIMATE: &str = "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver";

/// Decodes a request body to text. The charset is taken from a byte-order mark, else
/// the Content-Type's `charset` parameter, else the XML declaration's `encoding`, else
/// UTF-8 (RFC 7303's order). Legacy clients send ISO-8859-1, windows-1252 or UTF-16.
pub fn decode_body<'b>(
    body: &'b [u8],
    content_type: Option<&str>,
) -> Result<Cow<'b, str>, EnvelopeError> {
    let (encoding, bytes) = match Encoding::for_bom(body) {
        Some((encoding, bom)) => (encoding, &body[bom..]),
        None => {
            let label = content_type
                .and_then(charset_parameter)
                .or_else(|| declared_encoding(body));
            let encoding = match label {
                Some(label) => Encoding::for_label(label.trim().as_bytes())
                    .ok_or(EnvelopeError::Undecodable)?,
                None => UTF_8,
            };
            (encoding, body)
        }
    };
    if encoding == REPLACEMENT {
        return Err(EnvelopeError::Undecodable);
    }
    encoding
        .decode_without_bom_handling_and_without_replacement(bytes)
        .ok_or(EnvelopeError::Undecodable)
}

/// `charset` from a Content-Type such as `text/xml; charset="ISO-8859-1"`.
fn charset_parameter(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// `encoding` from an ASCII-compatible XML declaration at the start of `body`.
fn declared_encoding(body: &[u8]) -> Option<&str> {
    let head = &body[..body.len().min(256)];
    if !head.starts_with(b"<?xml") {
        return None;
    }
    let end = head.windows(2).position(|w| w == b"?>")?;
    let decl = std::str::from_utf8(&head[..end]).ok()?;
    let rest = &decl[decl.find("encoding")? + "encoding".len()..];
    let rest = rest.trim_start().strip_prefix('=')?.trim_start();
    let quote = rest.chars().next().filter(|q| *q == '"' || *q == '\'')?;
    let rest = &rest[1..];
    let label = &rest[..rest.find(quote)?];
    // Readable as ASCII, the declaration cannot truthfully name UTF-16 (which would need a
    // BOM here): .NET's StringWriter writes `utf-16` into what is then sent as UTF-8.
    let utf16 = Encoding::for_label(label.trim().as_bytes())
        .is_some_and(|e| e == UTF_16LE || e == UTF_16BE);
    (!utf16).then_some(label)
}

/// Parses `text` (already decoded to UTF-8, BOM removed) into a [`ParsedEnvelope`].
pub fn parse_envelope(text: &str, limits: &Limits) -> Result<ParsedEnvelope, Refused> {
    let mut parser = Parser {
        limits,
        version: None,
        depth: 0,
        elements: 0,
        place: Place::BeforeRoot,
        seen_header: false,
        seen_body: false,
        body_children: 0,
        spec: None,
        operation: None,
        security: None,
        capture: Vec::new(),
        not_understood: Vec::new(),
        header_block_depth: 0,
    };
    let version_or = |p: &Parser<'_>, error| Refused {
        version: p.version,
        error,
    };
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_end_names = true;
    reader.config_mut().check_comments = true;
    let mut first = true;
    loop {
        let (ns, event) = match reader.read_resolved_event() {
            Ok(x) => x,
            Err(_) => return Err(version_or(&parser, EnvelopeError::NotXml)),
        };
        let is_first = std::mem::replace(&mut first, false);
        let result = match event {
            Event::Decl(_) if is_first => Ok(()),
            Event::Decl(_) => Err(EnvelopeError::NotXml),
            Event::DocType(_) => Err(EnvelopeError::Doctype),
            Event::PI(_) => Err(EnvelopeError::ProcessingInstruction),
            Event::Comment(_) => Ok(()),
            Event::Start(e) => owned_ns(&ns).and_then(|ns| parser.start(&reader, ns, &e, false)),
            Event::Empty(e) => owned_ns(&ns).and_then(|ns| parser.start(&reader, ns, &e, true)),
            Event::End(_) => {
                parser.end();
                Ok(())
            }
            Event::Text(t) => match t.xml10_content() {
                Ok(s) => parser.text(&s),
                Err(_) => Err(EnvelopeError::NotXml),
            },
            // Line ends are normalised in CDATA as in text (XML 1.0 §2.11).
            Event::CData(c) => match c.xml10_content() {
                Ok(s) => parser.text(&s),
                Err(_) => Err(EnvelopeError::NotXml),
            },
            Event::GeneralRef(r) => match resolve_reference(&r) {
                Some(c) => parser.text(c.encode_utf8(&mut [0u8; 4])),
                None => Err(EnvelopeError::NotXml),
            },
            Event::Eof => break,
        };
        result.map_err(|error| version_or(&parser, error))?;
    }
    parser.finish()
}

/// Resolves `&name;` and `&#…;`: only the five predefined entities exist, since DOCTYPE
/// (and with it every entity declaration) is refused.
fn resolve_reference(r: &quick_xml::events::BytesRef<'_>) -> Option<char> {
    if r.is_char_ref() {
        return r
            .resolve_char_ref()
            .ok()
            .flatten()
            .filter(|c| is_xml_char(*c));
    }
    match &**r {
        b"lt" => Some('<'),
        b"gt" => Some('>'),
        b"amp" => Some('&'),
        b"apos" => Some('\''),
        b"quot" => Some('"'),
        _ => None,
    }
}

/// XML 1.0's `Char` production (Rust strings cannot hold surrogates).
pub(super) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn owned_ns(ns: &ResolveResult<'_>) -> Result<Option<String>, EnvelopeError> {
    match ns {
        ResolveResult::Bound(Namespace(n)) => std::str::from_utf8(n)
            .map(|s| Some(s.to_string()))
            .map_err(|_| EnvelopeError::NotXml),
        ResolveResult::Unbound => Ok(None),
        // A prefix with no declaration: not namespace-well-formed.
        ResolveResult::Unknown(_) => Err(EnvelopeError::NotXml),
    }
}

struct Parser<'l> {
    limits: &'l Limits,
    version: Option<SoapVersion>,
    depth: usize,
    elements: usize,
    place: Place,
    seen_header: bool,
    seen_body: bool,
    body_children: usize,
    spec: Option<&'static OperationSpec>,
    operation: Option<Element>,
    security: Option<Element>,
    /// Open elements of the subtree being kept (the operation or `wsse:Security`),
    /// its root first.
    capture: Vec<Element>,
    not_understood: Vec<QualifiedName>,
    header_block_depth: usize,
}

impl Parser<'_> {
    fn start(
        &mut self,
        reader: &NsReader<&[u8]>,
        ns: Option<String>,
        e: &BytesStart<'_>,
        empty: bool,
    ) -> Result<(), EnvelopeError> {
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return Err(EnvelopeError::TooManyElements);
        }
        if self.depth + 1 > self.limits.max_depth {
            return Err(EnvelopeError::TooDeep);
        }
        let local = std::str::from_utf8(e.local_name().into_inner())
            .map_err(|_| EnvelopeError::NotXml)?
            .to_string();
        // Namespaces in XML: no element is in the xmlns namespace; names hold XML characters.
        if e.name().prefix().is_some_and(|p| p.as_ref() == b"xmlns")
            || !local.chars().all(is_xml_char)
        {
            return Err(EnvelopeError::NotXml);
        }
        let attributes = self.attributes(reader, e)?;

        match self.place {
            Place::BeforeRoot => {
                if local != "Envelope" {
                    return Err(EnvelopeError::NotEnvelope(
                        "the root element is not Envelope",
                    ));
                }
                self.version = match ns.as_deref() {
                    Some(SOAP11_ENV_NS) => Some(SoapVersion::V11),
                    Some(SOAP12_ENV_NS) => Some(SoapVersion::V12),
                    _ => return Err(EnvelopeError::VersionMismatch),
                };
                self.place = Place::Envelope;
            }
            Place::Envelope => {
                let env_ns = self.version.map(SoapVersion::envelope_ns);
                let in_env = ns.as_deref() == env_ns;
                match local.as_str() {
                    "Header" if in_env && !self.seen_header && !self.seen_body => {
                        self.seen_header = true;
                        self.place = Place::Header;
                    }
                    "Body" if in_env && !self.seen_body => {
                        self.seen_body = true;
                        self.place = Place::Body;
                    }
                    _ => return Err(EnvelopeError::NotEnvelope("unexpected element in Envelope")),
                }
            }
            Place::Header => {
                let (must, for_us) = self.header_target(&attributes);
                if for_us && ns.as_deref() == Some(WSSE_NS) && local == "Security" {
                    if self.security.is_some() {
                        return Err(EnvelopeError::NotEnvelope(
                            "more than one wsse:Security header for this service",
                        ));
                    }
                    // Understood: it carries the caller's UsernameToken.
                    self.place = Place::Security;
                    self.capture.push(Element::new(ns, local, attributes));
                } else {
                    // No other header block is processed, so a mandatory one addressed
                    // to us cannot be honoured.
                    if must && for_us {
                        self.not_understood.push(QualifiedName { ns, local });
                    }
                    self.place = Place::HeaderBlock;
                    self.header_block_depth = self.depth + 1;
                }
            }
            Place::HeaderBlock | Place::OtherBodyContent => {}
            Place::Body => {
                self.body_children += 1;
                if self.body_children > 1 {
                    return Err(EnvelopeError::NotEnvelope(
                        "Body holds more than one element",
                    ));
                }
                let spec = match ns.as_deref() {
                    Some(API_NS) => ops::find(&local),
                    _ => None,
                };
                if let Some(spec) = spec {
                    self.spec = Some(spec);
                    self.place = Place::Operation;
                    self.capture.push(Element::new(ns, local, attributes));
                } else {
                    self.place = Place::OtherBodyContent;
                }
            }
            Place::Operation | Place::Security => {
                self.capture.push(Element::new(ns, local, attributes));
            }
            Place::AfterRoot => return Err(EnvelopeError::ContentAfterRoot),
        }
        self.depth += 1;
        if empty {
            self.end();
        }
        Ok(())
    }

    /// Checks the attributes are well-formed and bounded; returns them (namespace
    /// declarations aside) as `(namespace, local name, value)`.
    fn attributes(
        &self,
        reader: &NsReader<&[u8]>,
        e: &BytesStart<'_>,
    ) -> Result<Vec<(Option<String>, String, String)>, EnvelopeError> {
        let mut all = Vec::new();
        for (i, attr) in e.attributes().with_checks(true).enumerate() {
            if i >= self.limits.max_attributes {
                return Err(EnvelopeError::TooManyAttributes);
            }
            let attr = attr.map_err(|_| EnvelopeError::NotXml)?;
            let (ns, local) = reader.resolver().resolve_attribute(attr.key);
            let value = attr
                .decode_and_unescape_value(reader.decoder())
                .map_err(|_| EnvelopeError::NotXml)?;
            if !value.chars().all(is_xml_char) {
                return Err(EnvelopeError::NotXml);
            }
            if attr.key.as_namespace_binding().is_some() {
                continue;
            }
            let ns = owned_ns(&ns)?;
            let local = std::str::from_utf8(local.into_inner())
                .map_err(|_| EnvelopeError::NotXml)?
                .to_string();
            all.push((ns, local, value.into_owned()));
        }
        Ok(all)
    }

    /// Whether a header block must be understood, and whether it is addressed to us
    /// (SOAP 1.1 `actor` next or absent; SOAP 1.2 `role` next, ultimateReceiver or absent).
    fn header_target(&self, attributes: &[(Option<String>, String, String)]) -> (bool, bool) {
        let env_ns = self.version.map(SoapVersion::envelope_ns);
        let soap_attr = |name: &str| {
            attributes
                .iter()
                .find(|(ans, alocal, _)| ans.as_deref() == env_ns && alocal == name)
                .map(|(_, _, v)| v.trim())
        };
        let must = matches!(soap_attr(MUST_UNDERSTAND), Some("1" | "true"));
        let for_us = match self.version {
            Some(SoapVersion::V12) => matches!(
                soap_attr("role"),
                None | Some("") | Some(SOAP12_ROLE_NEXT) | Some(SOAP12_ROLE_ULTIMATE)
            ),
            _ => matches!(
                soap_attr("actor"),
                None | Some("") | Some(SOAP11_ACTOR_NEXT)
            ),
        };
        (must, for_us)
    }

    fn end(&mut self) {
        self.depth = self.depth.saturating_sub(1);
        match self.place {
            Place::Operation | Place::Security => {
                if let Some(done) = self.capture.pop() {
                    match self.capture.last_mut() {
                        Some(parent) => parent.children.push(done),
                        None if self.place == Place::Operation => {
                            self.operation = Some(done);
                            self.place = Place::Body;
                        }
                        None => {
                            self.security = Some(done);
                            self.place = Place::Header;
                        }
                    }
                }
            }
            Place::HeaderBlock if self.depth < self.header_block_depth => {
                self.place = Place::Header
            }
            Place::OtherBodyContent if self.depth == 2 => self.place = Place::Body,
            Place::Header | Place::Body => self.place = Place::Envelope,
            Place::Envelope => self.place = Place::AfterRoot,
            _ => {}
        }
    }

    fn text(&mut self, text: &str) -> Result<(), EnvelopeError> {
        if !text.chars().all(is_xml_char) {
            return Err(EnvelopeError::NotXml);
        }
        let blank = text.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
        match self.place {
            Place::Operation | Place::Security => {
                if let Some(open) = self.capture.last_mut() {
                    open.text.push_str(text);
                }
                Ok(())
            }
            Place::HeaderBlock | Place::OtherBodyContent => Ok(()),
            _ if blank => Ok(()),
            Place::AfterRoot => Err(EnvelopeError::ContentAfterRoot),
            Place::BeforeRoot => Err(EnvelopeError::NotXml),
            _ => Err(EnvelopeError::NotEnvelope("text where elements belong")),
        }
    }

    fn finish(self) -> Result<ParsedEnvelope, Refused> {
        let version = self.version;
        let refuse = |error| Err(Refused { version, error });
        match self.place {
            Place::AfterRoot => {}
            Place::BeforeRoot => return refuse(EnvelopeError::NotXml),
            _ => return refuse(EnvelopeError::NotXml),
        }
        let Some(version) = version else {
            return refuse(EnvelopeError::NotXml);
        };
        if !self.not_understood.is_empty() {
            return refuse(EnvelopeError::MustUnderstand(self.not_understood));
        }
        if !self.seen_body {
            return refuse(EnvelopeError::NotEnvelope("no Body"));
        }
        match (self.spec, self.operation) {
            (Some(spec), Some(element)) => Ok(ParsedEnvelope {
                version,
                operation: Operation { spec, element },
                security: self.security,
            }),
            _ if self.body_children == 0 => refuse(EnvelopeError::NotEnvelope("empty Body")),
            _ => refuse(EnvelopeError::UnknownOperation),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK11: &str = r#"<?xml version="1.0"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"
                   xmlns="http://ispringlearn.com/go/services/api/soap">
  <SOAP-ENV:Body>
    <UpdateUserPasswordRequest>
      <credentials><accountUrl>a</accountUrl><email>e@x.io</email><password>p&amp;&#x41;<![CDATA[<c>]]></password></credentials>
      <userId>u</userId><password>  new  </password>
    </UpdateUserPasswordRequest>
  </SOAP-ENV:Body>
</SOAP-ENV:Envelope>"#;

    fn parse(s: &str) -> Result<ParsedEnvelope, EnvelopeError> {
        parse_envelope(s, &Limits::default()).map_err(|r| r.error)
    }

    #[test]
    fn debug_output_of_a_parsed_envelope_shows_no_text() {
        let env = parse(OK11).unwrap();
        let shown = format!("{env:?}");
        assert!(shown.contains("UpdateUserPasswordRequest"), "{shown}");
        for secret in ["p&A<c>", "new", "e@x.io"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn parses_the_contract_example_and_keeps_text_exactly() {
        let env = parse(OK11).unwrap();
        assert_eq!(env.version, SoapVersion::V11);
        assert_eq!(env.operation.name(), "UpdateUserPassword");
        let op = env.operation.element;
        assert_eq!(op.children.len(), 3);
        assert_eq!(op.children[0].children[2].text, "p&A<c>");
        assert_eq!(op.children[2].text, "  new  ");
        assert_eq!(op.children[1].ns.as_deref(), Some(API_NS));
    }

    #[test]
    fn refuses_hostile_and_broken_documents() {
        let cases = [
            ("<!DOCTYPE x [<!ENTITY a 'b'>]><x/>", EnvelopeError::Doctype),
            ("<?pi x?><x/>", EnvelopeError::ProcessingInstruction),
            ("not xml", EnvelopeError::NotXml),
            ("", EnvelopeError::NotXml),
            (
                "<a:Envelope xmlns:a='urn:x'/>",
                EnvelopeError::VersionMismatch,
            ),
            (
                "<Foo/>",
                EnvelopeError::NotEnvelope("the root element is not Envelope"),
            ),
        ];
        for (doc, want) in cases {
            assert_eq!(parse(doc).unwrap_err(), want, "{doc}");
        }
        assert_eq!(
            parse(&format!("{OK11}<x/>")).unwrap_err(),
            EnvelopeError::ContentAfterRoot
        );
        assert_eq!(
            parse(&format!("{OK11}junk")).unwrap_err(),
            EnvelopeError::ContentAfterRoot
        );
        assert!(parse(&format!("{OK11}<!-- trailing comment -->\n")).is_ok());
        let undefined = OK11.replace("&amp;", "&bomb;");
        assert_eq!(parse(&undefined).unwrap_err(), EnvelopeError::NotXml);
        let deep = format!("{}{}", "<a>".repeat(40), "</a>".repeat(40));
        let deep = OK11.replace("<userId>u</userId>", &deep);
        assert_eq!(parse(&deep).unwrap_err(), EnvelopeError::TooDeep);
    }

    #[test]
    fn bodies_are_decoded_by_bom_then_charset_then_declaration() {
        let latin1 = b"<?xml version='1.0' encoding='ISO-8859-1'?><a>Passw\xf6rt</a>";
        assert_eq!(
            decode_body(latin1, None).unwrap(),
            "<?xml version='1.0' encoding='ISO-8859-1'?><a>Passwört</a>"
        );
        let plain = b"<a>\xf6</a>";
        assert_eq!(
            decode_body(plain, Some("text/xml; charset=\"windows-1252\"")).unwrap(),
            "<a>ö</a>"
        );
        assert_eq!(decode_body(plain, None), Err(EnvelopeError::Undecodable));
        let mut utf16: Vec<u8> = vec![0xFF, 0xFE];
        utf16.extend("<a>ü</a>".encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(
            decode_body(&utf16, Some("text/xml; charset=utf-8")).unwrap(),
            "<a>ü</a>"
        );
        assert_eq!(decode_body(b"\xEF\xBB\xBF<a/>", None).unwrap(), "<a/>");
        let dotnet = "<?xml version=\"1.0\" encoding=\"utf-16\"?><a>ü</a>";
        assert_eq!(decode_body(dotnet.as_bytes(), None).unwrap(), dotnet);
        assert_eq!(
            decode_body(b"<a/>", Some("text/xml; charset=klingon")),
            Err(EnvelopeError::Undecodable)
        );
    }

    #[test]
    fn must_understand_headers_addressed_to_us_are_refused() {
        let doc = OK11.replace(
            "<SOAP-ENV:Body>",
            r#"<SOAP-ENV:Header><t:Tx xmlns:t="urn:t" SOAP-ENV:mustUnderstand="1"/></SOAP-ENV:Header><SOAP-ENV:Body>"#,
        );
        assert!(matches!(parse(&doc), Err(EnvelopeError::MustUnderstand(q)) if q[0].local == "Tx"));
        let elsewhere = doc.replace(
            "mustUnderstand=\"1\"",
            "mustUnderstand=\"1\" SOAP-ENV:actor=\"urn:other\"",
        );
        assert!(parse(&elsewhere).is_ok());
        let optional = doc.replace("mustUnderstand=\"1\"", "mustUnderstand=\"0\"");
        assert!(parse(&optional).is_ok());
    }
}
