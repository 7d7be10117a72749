//! A small, bounded XML tree for OVF descriptors.
//!
//! Descriptors come from the internet, so the reader is strict about what can
//! hurt (no DTDs, hence no entity expansion and no external entities; bounded
//! size, depth and element count) and lenient about what real exporters get
//! wrong (an unbound prefix becomes a pseudo-namespace with a warning). Every
//! element keeps its line and column so later checks can point at it.
//!
//! The old OVF 0.9 / early-1.0 form `<Section xsi:type="ovf:DiskSection_Type">`
//! and `<Content xsi:type="ovf:VirtualSystem_Type">` is normalised here to the
//! named form (`DiskSection`, `VirtualSystem`), so the model sees one shape.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// Largest descriptor accepted. Real ones are at most a few hundred KiB.
pub const MAX_DOCUMENT_BYTES: usize = 32 << 20;
const MAX_DEPTH: usize = 128;
const MAX_ELEMENTS: usize = 500_000;

/// Pseudo-namespace given to elements whose prefix is not declared.
pub const UNDECLARED_PREFIX_NS: &str = "urn:ovf-run:undeclared-prefix:";

pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Namespace URI of the attribute, `None` when unprefixed.
    pub ns: Option<String>,
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Default)]
pub struct Element {
    /// Namespace URI, `None` when the element is in no namespace.
    pub ns: Option<String>,
    /// Local name (after `xsi:type` normalisation).
    pub name: String,
    pub attrs: Vec<Attr>,
    pub children: Vec<Element>,
    /// Text directly inside this element, entity references resolved.
    pub text: String,
    pub line: u32,
    pub column: u32,
}

/// Where and why parsing failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl Element {
    /// Children with this local name, in any namespace.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Child by local name, ignoring ASCII case (CIM property names were
    /// spelled `InstanceId` before OVF 1.0 and `InstanceID` after).
    pub fn child_ci(&self, name: &str) -> Option<&Element> {
        self.children
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Trimmed text of a child, if present and non-empty.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child_ci(name)
            .map(|c| c.text.trim())
            .filter(|t| !t.is_empty())
    }

    /// An attribute by local name whose namespace satisfies `ns_ok`
    /// (`None` is an unprefixed attribute).
    pub fn attr_where(&self, name: &str, ns_ok: impl Fn(Option<&str>) -> bool) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name == name && ns_ok(a.ns.as_deref()))
            .map(|a| a.value.as_str())
    }

    pub fn position(&self) -> (u32, u32) {
        (self.line, self.column)
    }
}

/// Turns raw descriptor bytes into text: UTF-8 (with or without BOM), UTF-16
/// with BOM, or ISO-8859-1 when the declaration says so.
pub fn decode_document(bytes: &[u8]) -> Result<String, XmlError> {
    let err = |message: String| XmlError {
        line: 1,
        column: 1,
        message,
    };
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(err(format!(
            "descriptor is {} bytes; more than the {} accepted",
            bytes.len(),
            MAX_DOCUMENT_BYTES
        )));
    }
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return utf8(rest);
    }
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        let le = bytes[0] == 0xFF;
        let units: Vec<u16> = bytes[2..]
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        return String::from_utf16(&units).map_err(|_| err("invalid UTF-16 text".into()));
    }
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).to_ascii_lowercase();
    let latin1 = head.starts_with("<?xml")
        && head.split("?>").next().is_some_and(|decl| {
            decl.contains("iso-8859-1") || decl.contains("latin1") || decl.contains("windows-1252")
        });
    if latin1 {
        return Ok(bytes.iter().map(|&b| b as char).collect());
    }
    utf8(bytes)
}

fn utf8(bytes: &[u8]) -> Result<String, XmlError> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(e) => {
            let (line, column) = line_col(bytes, e.valid_up_to());
            Err(XmlError {
                line,
                column,
                message: "text is not valid UTF-8".into(),
            })
        }
    }
}

/// Line and column of increasing offsets in linear time overall.
#[derive(Default)]
struct LineTracker {
    offset: usize,
    line: u32,
    line_start: usize,
}

impl LineTracker {
    fn advance(&mut self, text: &[u8], offset: usize) -> (u32, u32) {
        let offset = offset.min(text.len());
        if offset < self.offset {
            return line_col(text, offset);
        }
        for (i, &b) in text[self.offset..offset].iter().enumerate() {
            if b == b'\n' {
                self.line += 1;
                self.line_start = self.offset + i + 1;
            }
        }
        self.offset = offset;
        let column = String::from_utf8_lossy(&text[self.line_start..offset])
            .chars()
            .count()
            + 1;
        (self.line + 1, column as u32)
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &[u8], offset: usize) -> (u32, u32) {
    let upto = &text[..offset.min(text.len())];
    let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = upto.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&upto[line_start..]).chars().count() + 1;
    (line as u32, column as u32)
}

/// Parse a document into its root element. `warnings` collects leniencies.
pub fn parse(text: &str, warnings: &mut Vec<String>) -> Result<Element, XmlError> {
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut tracker = LineTracker::default();
    let bytes = text.as_bytes();
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let start_pos = reader.buffer_position();
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(e) => {
                let (line, column) = line_col(bytes, reader.error_position() as usize);
                return Err(XmlError {
                    line,
                    column,
                    message: e.to_string(),
                });
            }
        };
        let (line, column) = tracker.advance(bytes, start_pos as usize);
        let fail = |message: String| XmlError {
            line,
            column,
            message,
        };
        match event {
            Event::Start(start) => {
                check_limits(root.is_some(), &mut count, stack.len()).map_err(fail)?;
                let element = build_element(&reader, &start, line, column, warnings).map_err(fail)?;
                stack.push(element);
            }
            Event::Empty(start) => {
                check_limits(root.is_some(), &mut count, stack.len()).map_err(fail)?;
                let element = build_element(&reader, &start, line, column, warnings).map_err(fail)?;
                close(&mut stack, &mut root, element);
            }
            Event::End(_) => {
                let Some(done) = stack.pop() else {
                    return Err(fail("closing tag without an opening tag".into()));
                };
                close(&mut stack, &mut root, done);
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&content);
                } else if !content.trim().is_empty() {
                    return Err(fail("text outside the root element".into()));
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&c.into_inner());
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(ch)) => ch.to_string(),
                    Ok(None) => match predefined_entity(&r) {
                        Some(s) => s.to_string(),
                        None => {
                            return Err(fail(format!(
                                "unknown entity &{};: entities other than XML's five are refused",
                                &*r
                            )))
                        }
                    },
                    Err(e) => return Err(fail(e.to_string())),
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::DocType(_) => {
                return Err(fail(
                    "document type declarations (DTDs) are refused: they allow entity expansion attacks and external entities"
                        .into(),
                ))
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        let (line, column) = open.position();
        return Err(XmlError {
            line,
            column,
            message: format!("element <{}> is never closed", open.name),
        });
    }
    root.ok_or(XmlError {
        line: 1,
        column: 1,
        message: "the document has no root element".into(),
    })
}

fn check_limits(after_root: bool, count: &mut usize, depth: usize) -> Result<(), String> {
    if after_root {
        return Err("content after the root element".into());
    }
    *count += 1;
    if *count > MAX_ELEMENTS {
        return Err(format!("more than {MAX_ELEMENTS} elements"));
    }
    if depth >= MAX_DEPTH {
        return Err(format!("elements nested deeper than {MAX_DEPTH}"));
    }
    Ok(())
}

fn predefined_entity(name: &str) -> Option<&'static str> {
    Some(match name {
        "lt" => "<",
        "gt" => ">",
        "amp" => "&",
        "apos" => "'",
        "quot" => "\"",
        _ => return None,
    })
}

fn close(stack: &mut [Element], root: &mut Option<Element>, done: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(done),
        None => *root = Some(done),
    }
}

fn namespace_of(
    ns: ResolveResult<'_>,
    prefix: Option<&str>,
    warnings: &mut Vec<String>,
    line: u32,
) -> Option<String> {
    match ns {
        ResolveResult::Bound(n) => Some(n.as_ref().to_string()),
        ResolveResult::Unbound => None,
        ResolveResult::Unknown(p) => {
            let p = if p.is_empty() {
                prefix.unwrap_or_default().to_string()
            } else {
                p
            };
            warnings.push(format!(
                "line {line}: prefix '{p}' is not declared; treated as an unknown namespace"
            ));
            Some(format!("{UNDECLARED_PREFIX_NS}{p}"))
        }
    }
}

fn build_element(
    reader: &NsReader<&[u8]>,
    start: &BytesStart<'_>,
    line: u32,
    column: u32,
    warnings: &mut Vec<String>,
) -> Result<Element, String> {
    let qname = start.name();
    let (ns, _) = reader.resolver().resolve_element(qname);
    let prefix = qname.prefix().map(|p| p.as_ref().to_string());
    let ns = namespace_of(ns, prefix.as_deref(), warnings, line);
    let name = qname.local_name().as_ref().to_string();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| format!("malformed attribute: {e}"))?;
        let key = attr.key;
        if key.as_namespace_binding().is_some() {
            continue;
        }
        let (ans, local) = reader.resolver().resolve_attribute(key);
        let aprefix = key.prefix().map(|p| p.as_ref().to_string());
        let ans = namespace_of(ans, aprefix.as_deref(), warnings, line);
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| format!("attribute {}: {e}", key.as_ref()))?
            .into_owned();
        attrs.push(Attr {
            ns: ans,
            name: local.as_ref().to_string(),
            value,
        });
    }
    let mut element = Element {
        ns,
        name,
        attrs,
        line,
        column,
        ..Default::default()
    };
    normalise_xsi_type(&mut element);
    Ok(element)
}

/// `<Section xsi:type="ovf:DiskSection_Type">` → `<DiskSection>` in the same namespace.
fn normalise_xsi_type(element: &mut Element) {
    if element.name != "Section" && element.name != "Content" {
        return;
    }
    let Some(ty) = element.attr_where("type", |ns| ns == Some(XSI_NS)) else {
        return;
    };
    let local = ty.rsplit(':').next().unwrap_or(ty);
    let local = local.strip_suffix("_Type").unwrap_or(local);
    if !local.is_empty() {
        element.name = local.to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Element, XmlError> {
        parse(s, &mut Vec::new())
    }

    #[test]
    fn parses_namespaces_text_and_positions() {
        let doc = "<?xml version=\"1.0\"?>\n<E xmlns=\"urn:a\" xmlns:b=\"urn:b\">\n  <b:X b:k=\"v&amp;w\">t &lt; u</b:X><Y/>\n</E>";
        let root = p(doc).unwrap();
        assert_eq!(root.ns.as_deref(), Some("urn:a"));
        let x = root.child("X").unwrap();
        assert_eq!(x.ns.as_deref(), Some("urn:b"));
        assert_eq!(x.text, "t < u");
        assert_eq!(x.attrs[0].value, "v&w");
        assert_eq!(x.attrs[0].ns.as_deref(), Some("urn:b"));
        assert_eq!((x.line, x.column), (3, 3));
        assert_eq!(root.child("Y").unwrap().ns.as_deref(), Some("urn:a"));
        assert_eq!(root.children.len(), 2);
    }

    #[test]
    fn refuses_dtd_and_unknown_entities() {
        let laughs =
            "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">]><lolz>&lol;</lolz>";
        assert!(p(laughs).unwrap_err().message.contains("DTD"));
        assert!(p("<a>&foo;</a>")
            .unwrap_err()
            .message
            .contains("unknown entity"));
    }

    #[test]
    fn reports_mismatched_tags_with_position() {
        let e = p("<a>\n  <b></c>\n</a>").unwrap_err();
        assert_eq!(e.line, 2);
        let e = p("<a><b></b>").unwrap_err();
        assert!(e.message.contains("never closed"), "{e:?}");
    }

    #[test]
    fn unbound_prefix_is_lenient() {
        let mut w = Vec::new();
        let root = parse("<a><zz:b/></a>", &mut w).unwrap();
        assert_eq!(root.children[0].name, "b");
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn xsi_type_sections_are_normalised() {
        let doc = format!("<E xmlns:ovf=\"urn:o\" xmlns:xsi=\"{XSI_NS}\"><Section xsi:type=\"ovf:DiskSection_Type\"/></E>");
        assert_eq!(p(&doc).unwrap().children[0].name, "DiskSection");
    }

    #[test]
    fn depth_is_bounded() {
        let doc = "<a>".repeat(MAX_DEPTH + 5) + &"</a>".repeat(MAX_DEPTH + 5);
        assert!(p(&doc).unwrap_err().message.contains("deeper"));
    }

    #[test]
    fn decodes_bom_and_latin1() {
        assert_eq!(decode_document(b"\xEF\xBB\xBF<a/>").unwrap(), "<a/>");
        let latin = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>\xE9</a>";
        assert!(decode_document(latin).unwrap().contains('\u{e9}'));
        let bad = b"<a>\n\xFF</a>";
        assert_eq!(decode_document(bad).unwrap_err().line, 2);
    }
}
