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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// Largest descriptor accepted. Real ones are at most a few hundred KiB.
pub const MAX_DOCUMENT_BYTES: usize = 32 << 20;
const MAX_DEPTH: usize = 128;
/// Element and attribute caps. The largest descriptors in the corpus
/// (a vCenter appliance, a nested-ESXi template) have about 1 400 elements,
/// 700 attributes and at most 9 attributes on one element; the caps leave a
/// wide margin and bound the tree to some tens of MB whatever the input.
const MAX_ELEMENTS: usize = 100_000;
const MAX_ATTRIBUTES: usize = 100_000;
const MAX_ATTRIBUTES_PER_ELEMENT: usize = 256;
/// Namespace declarations in the whole document, and the longest URI.
const MAX_NAMESPACE_DECLARATIONS: usize = 1_000;
const MAX_NAMESPACE_URI: usize = 1_024;

/// Pseudo-namespace given to elements whose prefix is not declared.
pub const UNDECLARED_PREFIX_NS: &str = "urn:ovf-run:undeclared-prefix:";

pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Namespace URI of the attribute, `None` when unprefixed (shared
    /// between all uses of the URI).
    pub ns: Option<Arc<str>>,
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Default)]
pub struct Element {
    /// Namespace URI, `None` when the element is in no namespace (shared
    /// between all uses of the URI, so a long URI costs its length once).
    pub ns: Option<Arc<str>>,
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

/// Line and column of increasing offsets in linear time overall: the
/// column is carried along (characters counted since the line's start), so
/// a descriptor on one long line is not re-counted at every event.
#[derive(Default)]
struct LineTracker {
    offset: usize,
    line: u32,
    /// Characters between the start of the current line and `offset`.
    column: usize,
}

impl LineTracker {
    fn advance(&mut self, text: &[u8], offset: usize) -> (u32, u32) {
        let offset = offset.min(text.len());
        if offset < self.offset {
            return line_col(text, offset);
        }
        for &b in &text[self.offset..offset] {
            if b == b'\n' {
                self.line = self.line.saturating_add(1);
                self.column = 0;
            } else if b & 0xC0 != 0x80 {
                // Not a UTF-8 continuation byte: a new character.
                self.column += 1;
            }
        }
        self.offset = offset;
        (
            self.line + 1,
            (self.column + 1).min(u32::MAX as usize) as u32,
        )
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
    let mut tree = TreeState::new(warnings);
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
                tree.check_element(root.is_some(), stack.len()).map_err(fail)?;
                let element = tree.build_element(&reader, &start, line, column).map_err(fail)?;
                stack.push(element);
            }
            Event::Empty(start) => {
                tree.check_element(root.is_some(), stack.len()).map_err(fail)?;
                let element = tree.build_element(&reader, &start, line, column).map_err(fail)?;
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
                let mut utf8 = [0u8; 4];
                let resolved: &str = match r.resolve_char_ref() {
                    Ok(Some(ch)) => ch.encode_utf8(&mut utf8),
                    Ok(None) => match predefined_entity(&r) {
                        Some(s) => s,
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
                    top.text.push_str(resolved);
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

/// Counts, shared namespace strings and warnings while one tree is built.
struct TreeState<'w> {
    elements: usize,
    attributes: usize,
    namespace_declarations: usize,
    namespaces: HashMap<String, Arc<str>>,
    warned_prefixes: HashSet<String>,
    warnings: &'w mut Vec<String>,
}

impl<'w> TreeState<'w> {
    fn new(warnings: &'w mut Vec<String>) -> Self {
        TreeState {
            elements: 0,
            attributes: 0,
            namespace_declarations: 0,
            namespaces: HashMap::new(),
            warned_prefixes: HashSet::new(),
            warnings,
        }
    }

    fn check_element(&mut self, after_root: bool, depth: usize) -> Result<(), String> {
        if after_root {
            return Err("content after the root element".into());
        }
        self.elements += 1;
        if self.elements > MAX_ELEMENTS {
            return Err(format!(
                "more than {MAX_ELEMENTS} elements; real descriptors have a few thousand"
            ));
        }
        if depth >= MAX_DEPTH {
            return Err(format!("elements nested deeper than {MAX_DEPTH}"));
        }
        Ok(())
    }

    fn check_attribute(&mut self, on_element: usize) -> Result<(), String> {
        self.attributes += 1;
        if self.attributes > MAX_ATTRIBUTES {
            return Err(format!(
                "more than {MAX_ATTRIBUTES} attributes; real descriptors have a few thousand"
            ));
        }
        if on_element >= MAX_ATTRIBUTES_PER_ELEMENT {
            return Err(format!(
                "more than {MAX_ATTRIBUTES_PER_ELEMENT} attributes on one element"
            ));
        }
        Ok(())
    }

    /// Namespace declarations are few (a descriptor uses 5 to 20) and
    /// short; a document declaring thousands, or URIs of megabytes, would
    /// make every name lookup slow.
    fn check_namespace(&mut self, uri_len: usize) -> Result<(), String> {
        self.namespace_declarations += 1;
        if self.namespace_declarations > MAX_NAMESPACE_DECLARATIONS {
            return Err(format!(
                "more than {MAX_NAMESPACE_DECLARATIONS} namespace declarations"
            ));
        }
        if uri_len > MAX_NAMESPACE_URI {
            return Err(format!(
                "a namespace URI of {uri_len} bytes; more than the {MAX_NAMESPACE_URI} accepted"
            ));
        }
        Ok(())
    }

    fn intern(&mut self, uri: &str) -> Arc<str> {
        if let Some(shared) = self.namespaces.get(uri) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(uri);
        self.namespaces.insert(uri.to_string(), shared.clone());
        shared
    }

    fn namespace_of(
        &mut self,
        ns: ResolveResult<'_>,
        prefix: Option<&str>,
        line: u32,
    ) -> Option<Arc<str>> {
        match ns {
            ResolveResult::Bound(n) => Some(self.intern(n.as_ref())),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(p) => {
                let p = if p.is_empty() {
                    prefix.unwrap_or_default().to_string()
                } else {
                    p
                };
                if self.warned_prefixes.insert(p.clone()) {
                    self.warnings.push(format!(
                        "line {line}: prefix '{p}' is not declared; treated as an unknown namespace"
                    ));
                }
                Some(self.intern(&format!("{UNDECLARED_PREFIX_NS}{p}")))
            }
        }
    }

    fn build_element(
        &mut self,
        reader: &NsReader<&[u8]>,
        start: &BytesStart<'_>,
        line: u32,
        column: u32,
    ) -> Result<Element, String> {
        let qname = start.name();
        let (ns, _) = reader.resolver().resolve_element(qname);
        let prefix = qname.prefix();
        let ns = self.namespace_of(ns, prefix.as_ref().map(|p| p.as_ref()), line);
        let name = qname.local_name().as_ref().to_string();
        let mut attrs = Vec::new();
        for attr in start.attributes() {
            let attr = attr.map_err(|e| format!("malformed attribute: {e}"))?;
            let key = attr.key;
            self.check_attribute(attrs.len())?;
            if key.as_namespace_binding().is_some() {
                self.check_namespace(attr.value.len())?;
                continue;
            }
            let (ans, local) = reader.resolver().resolve_attribute(key);
            let aprefix = key.prefix();
            let ans = self.namespace_of(ans, aprefix.as_ref().map(|p| p.as_ref()), line);
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
        attrs.shrink_to_fit();
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
