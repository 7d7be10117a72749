//! The OVF environment document (DSP0243 "OVF environment", schema
//! DSP8027) that tells a guest its property values: `ovf-env.xml`.
//!
//! One document per virtual system: `Environment ovfenv:id=<system>` with a
//! `PlatformSection` (Kind `ovf-run`, Version, Locale, Timezone), a
//! `PropertySection` with the final value of every property of the system
//! and of the collections around it, an `Entity` for each sibling of the
//! system in its collection (with the sibling's properties), and VMware's
//! `ve:EthernetAdapterSection` with each NIC's MAC and network, which
//! VMware's guests and open-vm-tools read. Written with quick-xml; line
//! feeds, carriage returns and tabs in values are written as character
//! references so a parser gives them back unchanged (attribute-value
//! normalisation would turn them into spaces).

use crate::model::{Content, Envelope};
use crate::properties::{first_non_xml_char, FinalProperty, Resolution};
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::name::QName;
use std::borrow::Cow;

pub const ENV_NS: &str = "http://schemas.dmtf.org/ovf/environment/1";
/// VMware's environment extension namespace (EthernetAdapterSection).
pub const VE_NS: &str = "http://www.vmware.com/schema/ovfenv";
/// `PlatformSection/Kind`.
pub const PLATFORM_KIND: &str = "ovf-run";

/// What the platform says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// ovf-run's version.
    pub version: String,
    /// Like `en_US` (from the host's locale; `en` when it has none).
    pub locale: String,
    /// The host's offset from UTC in minutes, east positive.
    pub timezone_minutes: Option<i32>,
}

/// One NIC of the running system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adapter {
    /// `00:50:56:aa:bb:cc`.
    pub mac: String,
    /// The OVF network it is connected to.
    pub network: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    #[error("the descriptor has no virtual system '{0}'")]
    NoSystem(String),
    #[error("property '{key}': character {position} is U+{code:04X}, a control character XML 1.0 cannot carry")]
    NotXmlChar {
        key: String,
        position: usize,
        code: u32,
    },
    #[error("cannot write the OVF environment: {0}")]
    Write(#[from] std::io::Error),
}

/// The environment document for virtual system `system_id`.
pub fn document(
    env: &Envelope,
    system_id: &str,
    resolution: &Resolution,
    platform: &Platform,
    adapters: &[Adapter],
) -> Result<Vec<u8>, EnvironmentError> {
    let root = env
        .content
        .as_ref()
        .ok_or_else(|| EnvironmentError::NoSystem(system_id.into()))?;
    let path =
        path_to(root, system_id).ok_or_else(|| EnvironmentError::NoSystem(system_id.into()))?;
    // The system and the collections around it.
    let own: Vec<&FinalProperty> = resolution
        .properties
        .iter()
        .filter(|p| path.iter().any(|c| c.id() == p.owner))
        .collect();
    let siblings: Vec<&Content> = match path.len().checked_sub(2).map(|i| path[i]) {
        Some(Content::VirtualSystemCollection(parent)) => parent
            .members
            .iter()
            .filter(|m| m.id() != system_id)
            .collect(),
        _ => Vec::new(),
    };
    for p in &resolution.properties {
        if let Some((position, code)) = first_non_xml_char(&p.value) {
            return Err(EnvironmentError::NotXmlChar {
                key: p.full_key.clone(),
                position,
                code,
            });
        }
    }
    let mut w = quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let mut start = BytesStart::new("Environment");
    start.push_attribute(("xmlns", ENV_NS));
    start.push_attribute(("xmlns:oe", ENV_NS));
    start.push_attribute(("xmlns:ve", VE_NS));
    start.push_attribute(attr("oe:id", system_id));
    w.write_event(Event::Start(start))?;
    platform_section(&mut w, platform)?;
    property_section(&mut w, &own)?;
    for sibling in siblings {
        let mut entity = BytesStart::new("Entity");
        entity.push_attribute(attr("oe:id", sibling.id()));
        w.write_event(Event::Start(entity))?;
        let props: Vec<&FinalProperty> = resolution
            .properties
            .iter()
            .filter(|p| p.owner == sibling.id())
            .collect();
        property_section(&mut w, &props)?;
        w.write_event(Event::End(BytesEnd::new("Entity")))?;
    }
    if !adapters.is_empty() {
        w.write_event(Event::Start(BytesStart::new("ve:EthernetAdapterSection")))?;
        for a in adapters {
            let mut el = BytesStart::new("ve:Adapter");
            el.push_attribute(attr("ve:mac", &a.mac));
            if let Some(n) = &a.network {
                el.push_attribute(attr("ve:network", n));
            }
            w.write_event(Event::Empty(el))?;
        }
        w.write_event(Event::End(BytesEnd::new("ve:EthernetAdapterSection")))?;
    }
    w.write_event(Event::End(BytesEnd::new("Environment")))?;
    let mut out = w.into_inner();
    out.push(b'\n');
    Ok(out)
}

/// The ids whose properties `system_id`'s document carries: the system,
/// the collections around it and its siblings (empty: no such system).
pub fn visible_owners(env: &Envelope, system_id: &str) -> Vec<String> {
    let Some(path) = env
        .content
        .as_ref()
        .and_then(|root| path_to(root, system_id))
    else {
        return Vec::new();
    };
    let mut ids: Vec<String> = path.iter().map(|c| c.id().to_string()).collect();
    if let Some(Content::VirtualSystemCollection(parent)) =
        path.len().checked_sub(2).map(|i| path[i])
    {
        ids.extend(parent.members.iter().map(|m| m.id().to_string()));
    }
    ids.dedup();
    ids
}

/// The chain of content from the root to `id` (both included).
fn path_to<'a>(c: &'a Content, id: &str) -> Option<Vec<&'a Content>> {
    if c.id() == id && matches!(c, Content::VirtualSystem(_)) {
        return Some(vec![c]);
    }
    if let Content::VirtualSystemCollection(col) = c {
        for m in &col.members {
            if let Some(mut path) = path_to(m, id) {
                path.insert(0, c);
                return Some(path);
            }
        }
    }
    None
}

type W = quick_xml::Writer<Vec<u8>>;

fn platform_section(w: &mut W, platform: &Platform) -> std::io::Result<()> {
    w.write_event(Event::Start(BytesStart::new("PlatformSection")))?;
    text_element(w, "Kind", PLATFORM_KIND)?;
    text_element(w, "Version", &platform.version)?;
    text_element(w, "Locale", &platform.locale)?;
    if let Some(tz) = platform.timezone_minutes {
        text_element(w, "Timezone", &tz.to_string())?;
    }
    w.write_event(Event::End(BytesEnd::new("PlatformSection")))
}

fn property_section(w: &mut W, props: &[&FinalProperty]) -> std::io::Result<()> {
    if props.is_empty() {
        return w.write_event(Event::Empty(BytesStart::new("PropertySection")));
    }
    w.write_event(Event::Start(BytesStart::new("PropertySection")))?;
    for p in props {
        let mut el = BytesStart::new("Property");
        el.push_attribute(attr("oe:key", &p.full_key));
        el.push_attribute(attr("oe:value", &p.value));
        w.write_event(Event::Empty(el))?;
    }
    w.write_event(Event::End(BytesEnd::new("PropertySection")))
}

fn text_element(w: &mut W, name: &str, text: &str) -> std::io::Result<()> {
    w.write_event(Event::Start(BytesStart::new(name)))?;
    w.write_event(Event::Text(BytesText::new(text)))?;
    w.write_event(Event::End(BytesEnd::new(name)))
}

/// An attribute whose value survives attribute-value normalisation: the
/// XML metacharacters as entities, tab, LF and CR as character references.
fn attr<'a>(name: &'a str, value: &str) -> Attribute<'a> {
    let escaped = quick_xml::escape::escape(value);
    let value = if escaped.contains(['\t', '\n', '\r']) {
        Cow::Owned(
            escaped
                .replace('\t', "&#9;")
                .replace('\n', "&#10;")
                .replace('\r', "&#13;"),
        )
    } else {
        Cow::Owned(escaped.into_owned())
    };
    Attribute {
        key: QName(name),
        value,
    }
}

#[cfg(test)]
#[path = "environment_tests.rs"]
mod tests;
