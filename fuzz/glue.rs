//! Fuzzing glue: the exact functions the cargo-fuzz targets (`fuzz_targets/`) call, so
//! that `tests/fuzz_corpus.rs` replays the corpus and the regressions through the same
//! code. Included by both (`#[path]`), and built into neither the service nor its
//! library: the targets call the public pipeline (`soap::read_call`, the fault writer),
//! as the server does.

use std::borrow::Cow;

use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};

use soap_passwd::front::Incoming;
use soap_passwd::soap::{
    API_NS, EnvelopeError, Fault, FaultCode, FaultDetail, Limits, QualifiedName, Refused,
    SoapVersion, parse_envelope, read_call, write_fault,
};

/// The Content-Type a `request_path` input is sent with: `CONTENT_TYPES[selector % 8]`.
pub const CONTENT_TYPES: [Option<&str>; 8] = [
    Some("text/xml; charset=utf-8"),
    Some("application/soap+xml; charset=utf-8"),
    Some("text/xml"),
    Some(r#"application/soap+xml; charset="ISO-8859-1"; action="urn:UpdateUserPassword""#),
    Some("text/xml; charset=utf-16"),
    None,
    Some("text/xml; charset=windows-1252"),
    Some("application/soap+xml;charset=UTF-16LE"),
];

/// The Host a `request_path` input is sent with: `HOSTS[(selector / 8) % 8]`.
pub const HOSTS: [Option<&str>; 8] = [
    None,
    Some("tenant.example.com"),
    Some("Tenant.Example.com:8443"),
    Some("[::1]:8080"),
    Some("tenant.example.com."),
    Some(""),
    Some(":"),
    Some("xn--bcher-kva.example"),
];

/// The selector byte for a content type and host (indices into [`CONTENT_TYPES`] and
/// [`HOSTS`]); printable, so seed files stay readable.
pub fn selector(content_type: usize, host: usize) -> u8 {
    0x40 + 8 * (host as u8 % 8) + content_type as u8 % 8
}

/// The `request_path` target: the first byte selects Content-Type and Host, the rest is
/// the body. Runs the server's own first half of the pipeline (`soap::read_call`:
/// decode, pre-pass, the operation's decoding) and writes the fault a refusal gets,
/// which must be a well-formed envelope. Returns the outcome code (`DECODED` when a
/// domain call came out).
pub fn request_path(data: &[u8]) -> &'static str {
    let (selector, body) = data.split_first().map_or((0, data), |(s, b)| (*s, b));
    let host = HOSTS[usize::from(selector / 8 % 8)];
    let incoming = Incoming {
        content_type: CONTENT_TYPES[usize::from(selector % 8)],
        host: host.map(str::to_owned),
        // As the server derives it without --public-url: reset links need it.
        link_base: host.map(|h| format!("http://{h}")),
        ..Incoming::default()
    };
    match read_call(body, &incoming, &Limits::default()) {
        Err(unread) => {
            let fault = Fault::from_envelope_error(&unread.error);
            check_fault(unread.version, &fault, &|| {
                format!("request_path refusal {:?}", unread.error)
            });
            unread.error.code()
        }
        Ok(call) => match call.call {
            Ok(_) => "DECODED",
            Err(error) => {
                let fault = Fault::from_service_error(&error);
                check_fault(call.version, &fault, &|| {
                    format!("request_path service error {error:?}")
                });
                error.outcome().as_str()
            }
        },
    }
}

/// The detail elements a fault can carry, with their codes (`FaultDetail` holds
/// `&'static str`s, so only the real ones are fuzzed).
pub const DETAILS: [(&str, &str); 5] = [
    ("WrongParametersFault", "WRONG_PARAMETERS"),
    ("AuthenticationFailedFault", "AUTHENTICATION_FAILED"),
    ("UnknownUserFault", "UNKNOWN_USER"),
    ("PermissionDeniedFault", "PERMISSION_DENIED"),
    ("ServerBusyFault", "SERVER_BUSY"),
];

/// The names of a detail's extra children.
pub const EXTRA_NAMES: [&str; 3] = ["parameter", "violation", "reason"];

pub const FAULT_CODES: [FaultCode; 4] = [
    FaultCode::Client,
    FaultCode::Server,
    FaultCode::VersionMismatch,
    FaultCode::MustUnderstand,
];

/// One `fault_writer` input: a fault with arbitrary strings wherever `Fault` holds a
/// `String`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultCase {
    pub version: SoapVersion,
    pub code: FaultCode,
    pub reason: String,
    pub detail: Option<DetailCase>,
    pub not_understood: Vec<QualifiedName>,
}

/// A fault's typed detail in a [`FaultCase`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailCase {
    /// Index into [`DETAILS`] (modulo its length).
    pub kind: usize,
    pub message: String,
    /// (index into [`EXTRA_NAMES`] (modulo its length), value)
    pub extras: Vec<(usize, String)>,
}

impl FaultCase {
    pub fn to_fault(&self) -> Fault {
        Fault {
            code: self.code,
            reason: Cow::Owned(self.reason.clone()),
            detail: self.detail.as_ref().map(|d| {
                let (element, code) = DETAILS[d.kind % DETAILS.len()];
                FaultDetail {
                    element,
                    code,
                    message: d.message.clone(),
                    extras: d
                        .extras
                        .iter()
                        .map(|(name, value)| (EXTRA_NAMES[name % EXTRA_NAMES.len()], value.clone()))
                        .collect(),
                }
            }),
            status_override: None,
            not_understood: self.not_understood.clone(),
            retry_after: None,
        }
    }

    /// The first line of the text form.
    pub const MAGIC: &'static str = "soap-passwd fault_writer case";

    /// The text form stored in `fuzz/corpus/fault_writer` and `fuzz/regressions/fault_writer`:
    /// the magic line, then `key: value` lines (`#` starts a comment). Values are escaped
    /// (`\\`, `\n`, `\r`, `\t`, `\u{HEX}`) so any string fits on one line; a not-understood
    /// name is `local` or `namespace<TAB>local`.
    pub fn to_text(&self) -> String {
        let mut out = format!("{}\n", Self::MAGIC);
        let version = match self.version {
            SoapVersion::V11 => "1.1",
            SoapVersion::V12 => "1.2",
        };
        out.push_str(&format!("version: {version}\ncode: {:?}\n", self.code));
        out.push_str(&format!("reason: {}\n", escape_value(&self.reason)));
        if let Some(d) = &self.detail {
            out.push_str(&format!("detail: {}\n", DETAILS[d.kind % DETAILS.len()].0));
            out.push_str(&format!("message: {}\n", escape_value(&d.message)));
            for (name, value) in &d.extras {
                let name = EXTRA_NAMES[name % EXTRA_NAMES.len()];
                out.push_str(&format!("extra-{name}: {}\n", escape_value(value)));
            }
        }
        for name in &self.not_understood {
            let local = escape_value(&name.local);
            match &name.ns {
                Some(ns) => {
                    out.push_str(&format!("not-understood: {}\t{local}\n", escape_value(ns)))
                }
                None => out.push_str(&format!("not-understood: {local}\n")),
            }
        }
        out
    }

    /// Reads the text form; `None` when `data` is not one.
    pub fn from_text(data: &[u8]) -> Option<FaultCase> {
        let text = std::str::from_utf8(data).ok()?;
        let mut lines = text.lines();
        if lines.next()?.trim_end() != Self::MAGIC {
            return None;
        }
        let mut case = FaultCase {
            version: SoapVersion::V11,
            code: FaultCode::Client,
            reason: String::new(),
            detail: None,
            not_understood: Vec::new(),
        };
        for line in lines {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once(": ")
                .or_else(|| Some((line.strip_suffix(':')?, "")))?;
            match key {
                "version" => {
                    case.version = match value.trim() {
                        "1.1" => SoapVersion::V11,
                        "1.2" => SoapVersion::V12,
                        _ => return None,
                    }
                }
                "code" => {
                    case.code = *FAULT_CODES
                        .iter()
                        .find(|c| format!("{c:?}") == value.trim())?
                }
                "reason" => case.reason = unescape_value(value)?,
                "detail" => {
                    let kind = DETAILS.iter().position(|(e, _)| *e == value.trim())?;
                    case.detail = Some(DetailCase {
                        kind,
                        message: String::new(),
                        extras: Vec::new(),
                    });
                }
                "message" => case.detail.as_mut()?.message = unescape_value(value)?,
                "not-understood" => {
                    let name = match value.split_once('\t') {
                        Some((ns, local)) => QualifiedName {
                            ns: Some(unescape_value(ns)?),
                            local: unescape_value(local)?,
                        },
                        None => QualifiedName {
                            ns: None,
                            local: unescape_value(value)?,
                        },
                    };
                    case.not_understood.push(name);
                }
                _ => {
                    let name = key.strip_prefix("extra-")?;
                    let name = EXTRA_NAMES.iter().position(|n| *n == name)?;
                    let value = unescape_value(value)?;
                    case.detail.as_mut()?.extras.push((name, value));
                }
            }
        }
        Some(case)
    }
}

fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Trailing blanks would not survive an editor.
            ' ' if i == last => out.push_str("\\u{20}"),
            c if c.is_control() || !is_xml_char(c) => {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)))
            }
            c => out.push(c),
        }
    }
    out
}

fn unescape_value(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let rest = chars.as_str().strip_prefix('{')?;
                let end = rest.find('}')?;
                out.push(char::from_u32(u32::from_str_radix(&rest[..end], 16).ok()?)?);
                chars = rest[end + 1..].chars();
            }
            _ => return None,
        }
    }
    Some(out)
}

/// The `fault_writer` target: writes the fault and checks the output (see [`check_fault`]).
pub fn fault_writer(case: &FaultCase) {
    check_fault(case.version, &case.to_fault(), &|| {
        format!(
            "fault_writer case (store it in fuzz/regressions/fault_writer/):\n{}",
            case.to_text()
        )
    });
}

/// Writes `fault` in `version` and panics unless the output is a namespace-well-formed
/// SOAP envelope whose Body holds exactly one Fault that says what `fault` says: the
/// pre-pass reads it back (refusing it only as an unknown operation), and the code,
/// reason, detail texts and NotUnderstood names read back unchanged — up to
/// [`comparable`]. `context` describes the input for the panic message.
pub fn check_fault(version: SoapVersion, fault: &Fault, context: &dyn Fn() -> String) {
    let xml = write_fault(version, fault);
    let fail = |why: String| -> ! {
        panic!(
            "{why}\n{}\nwritten (escaped as in the text form):\n{}",
            context(),
            escape_value(&xml)
        )
    };
    // As many elements as the writer may emit: the bounds are the pre-pass's, not the point.
    let limits = Limits {
        max_depth: 16,
        max_elements: usize::MAX,
        max_attributes: 16,
        batch_max: 0,
    };
    let root = read_tree(&xml).unwrap_or_else(|why| fail(why));
    match parse_envelope(&xml, &limits) {
        Err(Refused {
            version: Some(v),
            error: EnvelopeError::UnknownOperation,
        }) if v == version => {}
        other => fail(format!(
            "the pre-pass does not read the fault back: {other:?}"
        )),
    }
    let env = Some(version.envelope_ns());
    let is = |e: &Node, ns: Option<&str>, local: &str| e.ns.as_deref() == ns && e.local == local;
    let (header, body) = match root.children.as_slice() {
        [body] => (None, body),
        [header, body] => (Some(header), body),
        _ => fail("Envelope does not hold [Header] Body".into()),
    };
    let fault_el = match body.children.as_slice() {
        [f] if is(body, env, "Body") && is(f, env, "Fault") => f,
        _ => fail("Body does not hold exactly one Fault".into()),
    };
    let expect_text = |e: &Node, want: &str, what: &str| {
        let want = comparable(&want.replace("\r\n", "\n").replace('\r', "\n"));
        if comparable(&e.text) != want || !e.children.is_empty() {
            fail(format!("{what} reads back as {:?}, not {want:?}", e.text));
        }
    };
    let code = format!(
        "{}:{}",
        match version {
            SoapVersion::V11 => "SOAP-ENV",
            SoapVersion::V12 => "env",
        },
        fault.code.local_name(version)
    );
    let detail = match (version, fault_el.children.as_slice()) {
        (SoapVersion::V11, [c, s, rest @ ..])
            if is(c, None, "faultcode") && is(s, None, "faultstring") =>
        {
            expect_text(c, &code, "faultcode");
            expect_text(s, &fault.reason, "faultstring");
            match rest {
                [] => None,
                [d] if is(d, None, "detail") => Some(d),
                _ => fail("unexpected children in Fault".into()),
            }
        }
        (SoapVersion::V12, [c, r, rest @ ..]) if is(c, env, "Code") && is(r, env, "Reason") => {
            match (c.children.as_slice(), r.children.as_slice()) {
                ([v], [t]) if is(v, env, "Value") && is(t, env, "Text") => {
                    expect_text(v, &code, "Code/Value");
                    expect_text(t, &fault.reason, "Reason/Text");
                }
                _ => fail("malformed Code or Reason".into()),
            }
            match rest {
                [] => None,
                [d] if is(d, env, "Detail") => Some(d),
                _ => fail("unexpected children in Fault".into()),
            }
        }
        _ => fail("Fault does not start with its code and reason".into()),
    };
    match (&fault.detail, detail.map(|d| d.children.as_slice())) {
        (None, None) => {}
        (Some(want), Some([typed])) if is(typed, Some(API_NS), want.element) => {
            let mut children = typed.children.iter();
            let mut next = |local: &str, value: &str| match children.next() {
                Some(e) if is(e, Some(API_NS), local) => expect_text(e, value, local),
                _ => fail(format!("detail lacks {local}")),
            };
            next("code", want.code);
            next("message", &want.message);
            for (name, value) in &want.extras {
                next(name, value);
            }
            if children.next().is_some() {
                fail("unexpected children in the detail".into());
            }
        }
        _ => fail("the detail does not match".into()),
    }
    let blocks: &[Node] = header.map_or(&[], |h| h.children.as_slice());
    let written = version == SoapVersion::V12 && !fault.not_understood.is_empty();
    if header.is_some() != written
        || blocks.len()
            != if written {
                fault.not_understood.len()
            } else {
                0
            }
    {
        fail("the Header does not hold one NotUnderstood per name".into());
    }
    for (block, name) in blocks.iter().zip(&fault.not_understood) {
        let Some(qname) = block
            .attributes
            .iter()
            .find(|(ns, local, _)| ns.is_none() && local == "qname")
            .map(|(_, _, v)| v.as_str())
        else {
            fail("NotUnderstood has no qname".into())
        };
        if !is(block, env, "NotUnderstood") {
            fail("the Header holds something else than NotUnderstood".into());
        }
        // Only a name whose local part is a colon-free string can read back as a QName.
        if name.local.contains(':') {
            continue;
        }
        let read = match qname.split_once(':') {
            Some((prefix, local)) => {
                let declared = block.attributes.iter().find_map(|(ns, l, v)| {
                    (ns.as_deref() == Some(XMLNS_NS) && l == prefix).then_some(v.as_str())
                });
                let reserved = match prefix {
                    "xml" => Some(XML_NS),
                    "xmlns" => Some(XMLNS_NS),
                    _ => None,
                };
                match declared.or(reserved) {
                    Some(ns) => QualifiedName {
                        ns: Some(ns.to_string()),
                        local: local.to_string(),
                    },
                    None => fail(format!("qname {qname:?} has an undeclared prefix")),
                }
            }
            None => QualifiedName {
                ns: None,
                local: qname.to_string(),
            },
        };
        // No namespace and the empty namespace name are the same thing.
        let want = QualifiedName {
            ns: name
                .ns
                .as_deref()
                .filter(|ns| !ns.is_empty())
                .map(comparable),
            local: comparable(&name.local),
        };
        let read = QualifiedName {
            ns: read.ns.as_deref().map(comparable),
            local: comparable(&read.local),
        };
        if read != want {
            fail(format!(
                "NotUnderstood reads back as {read:?}, not {want:?}"
            ));
        }
    }
}

/// A string as far as XML can carry it: characters outside `Char` (no escape can write
/// them) may be replaced by U+FFFD or dropped, so both are left out of comparisons.
fn comparable(s: &str) -> String {
    s.chars()
        .filter(|c| is_xml_char(*c) && *c != '\u{FFFD}')
        .collect()
}

const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// An element read back from written XML.
struct Node {
    ns: Option<String>,
    local: String,
    /// (namespace, local name, value), namespace declarations included (in [`XMLNS_NS`]).
    attributes: Vec<(Option<String>, String, String)>,
    text: String,
    children: Vec<Node>,
}

/// Reads `xml` into a tree, checking what quick-xml lets through: characters outside
/// XML's `Char`, undefined entities, empty or reserved namespace bindings.
fn read_tree(xml: &str) -> Result<Node, String> {
    let mut reader = NsReader::from_str(xml);
    reader.config_mut().check_end_names = true;
    reader.config_mut().check_comments = true;
    let mut open: Vec<Node> = Vec::new();
    let mut root = None;
    let bad = |what: &str, e: &dyn std::fmt::Debug| format!("not well-formed: {what}: {e:?}");
    loop {
        let (ns, event) = reader.read_resolved_event().map_err(|e| bad("read", &e))?;
        let text = match &event {
            Event::Text(t) => Some(t.xml10_content().map_err(|e| bad("text", &e))?),
            Event::CData(c) => Some(c.xml10_content().map_err(|e| bad("cdata", &e))?),
            Event::GeneralRef(r) => {
                let c = match &**r {
                    b"lt" => '<',
                    b"gt" => '>',
                    b"amp" => '&',
                    b"apos" => '\'',
                    b"quot" => '"',
                    _ => r
                        .resolve_char_ref()
                        .ok()
                        .flatten()
                        .filter(|c| is_xml_char(*c))
                        .ok_or_else(|| bad("reference", &r))?,
                };
                Some(Cow::Owned(c.to_string()))
            }
            _ => None,
        };
        if let Some(text) = text {
            if let Some(c) = text.chars().find(|c| !is_xml_char(*c)) {
                return Err(bad("character", &c));
            }
            match open.last_mut() {
                Some(e) => e.text.push_str(&text),
                None if text.trim().is_empty() => {}
                None => return Err(bad("text outside the root", &text)),
            }
            continue;
        }
        match &event {
            Event::Start(e) | Event::Empty(e) => {
                let node_ns = match ns {
                    ResolveResult::Bound(Namespace(n)) => {
                        Some(String::from_utf8_lossy(n).into_owned())
                    }
                    ResolveResult::Unbound => None,
                    ResolveResult::Unknown(p) => return Err(bad("unknown prefix", &p)),
                };
                let mut attributes = Vec::new();
                for attr in e.attributes().with_checks(true) {
                    let attr = attr.map_err(|e| bad("attribute", &e))?;
                    let value = attr
                        .decode_and_unescape_value(reader.decoder())
                        .map_err(|e| bad("attribute value", &e))?;
                    if let Some(c) = value.chars().find(|c| !is_xml_char(*c)) {
                        return Err(bad("character in an attribute", &c));
                    }
                    let local =
                        String::from_utf8_lossy(attr.key.local_name().into_inner()).into_owned();
                    let ans = if attr.key.as_namespace_binding().is_some() {
                        // Namespaces 1.0: a prefix may not be bound to the empty name.
                        if attr.key.prefix().is_some() && value.is_empty() {
                            return Err(bad("empty prefix binding", &local));
                        }
                        Some(XMLNS_NS.to_string())
                    } else {
                        match reader.resolver().resolve_attribute(attr.key).0 {
                            ResolveResult::Bound(Namespace(n)) => {
                                Some(String::from_utf8_lossy(n).into_owned())
                            }
                            ResolveResult::Unbound => None,
                            ResolveResult::Unknown(p) => return Err(bad("unknown prefix", &p)),
                        }
                    };
                    attributes.push((ans, local, value.into_owned()));
                }
                let node = Node {
                    ns: node_ns,
                    local: String::from_utf8_lossy(e.local_name().into_inner()).into_owned(),
                    attributes,
                    text: String::new(),
                    children: Vec::new(),
                };
                open.push(node);
                if matches!(event, Event::Empty(_)) {
                    close(&mut open, &mut root)?;
                }
            }
            Event::End(_) => close(&mut open, &mut root)?,
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) => {}
            other => return Err(bad("unexpected event", other)),
        }
    }
    if !open.is_empty() {
        return Err("not well-formed: unclosed elements".into());
    }
    root.ok_or_else(|| "no root element".into())
}

fn close(open: &mut Vec<Node>, root: &mut Option<Node>) -> Result<(), String> {
    let done = open.pop().ok_or("an end tag without a start")?;
    match open.last_mut() {
        Some(parent) => parent.children.push(done),
        None if root.is_none() => *root = Some(done),
        None => return Err("more than one root element".into()),
    }
    Ok(())
}

/// XML 1.0's `Char` production.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_form_round_trips_any_strings() {
        let case = FaultCase {
            version: SoapVersion::V12,
            code: FaultCode::MustUnderstand,
            reason: "a\\b\n\r\t\u{0}\u{FFFE} é ".into(),
            detail: Some(DetailCase {
                kind: 3,
                message: "m: x".into(),
                extras: vec![(1, "\\u{41}".into()), (0, String::new())],
            }),
            not_understood: vec![
                QualifiedName {
                    ns: Some("urn:a\tb".into()),
                    local: "T x".into(),
                },
                QualifiedName {
                    ns: None,
                    local: "#".into(),
                },
            ],
        };
        assert_eq!(FaultCase::from_text(case.to_text().as_bytes()), Some(case));
        assert_eq!(FaultCase::from_text(b"not a case"), None);
    }

    #[test]
    fn every_real_fault_passes_the_check() {
        use soap_passwd::domain::{DenyReason, ServiceError};
        let faults = [
            Fault::from_service_error(&ServiceError::PermissionDenied(DenyReason::NotInScope)),
            Fault::from_service_error(&ServiceError::ServerBusy),
            Fault::from_envelope_error(&EnvelopeError::MustUnderstand(vec![QualifiedName {
                ns: Some("urn:t".into()),
                local: "Tx".into(),
            }])),
            Fault::from_envelope_error(&EnvelopeError::VersionMismatch),
        ];
        for fault in &faults {
            for version in [SoapVersion::V11, SoapVersion::V12] {
                check_fault(version, fault, &|| format!("{fault:?}"));
            }
        }
    }
}
