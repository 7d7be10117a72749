//! The Envelope and its package-wide sections: References, DiskSection,
//! NetworkSection, DeploymentOptionSection.

use super::names::{
    self, is_ovf_namespace, is_required, ovf_attr, qualified, version_of_namespace, OvfVersion,
};
use super::system::{parse_content, Ctx};
use super::*;
use crate::units;
use crate::xml::{self, Element};

/// A descriptor problem, with the position it was found at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct DescriptorError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl DescriptorError {
    pub fn at(element: &Element, message: impl Into<String>) -> Self {
        DescriptorError {
            line: element.line,
            column: element.column,
            message: message.into(),
        }
    }
}

impl From<xml::XmlError> for DescriptorError {
    fn from(e: xml::XmlError) -> Self {
        DescriptorError {
            line: e.line,
            column: e.column,
            message: format!("not well-formed XML: {}", e.message),
        }
    }
}

pub type Result<T> = std::result::Result<T, DescriptorError>;

/// Parse and check an OVF descriptor.
pub fn parse_descriptor(bytes: &[u8]) -> Result<Envelope> {
    let text = xml::decode_document(bytes)?;
    let mut warnings = Vec::new();
    let root = xml::parse(&text, &mut warnings)?;
    if root.name != "Envelope" {
        return Err(DescriptorError::at(
            &root,
            format!("the root element is <{}>, not an OVF <Envelope>", root.name),
        ));
    }
    let namespace = envelope_namespace(&root)?;
    let ovf_version = version_of_namespace(&namespace).ok_or_else(|| {
        DescriptorError::at(
            &root,
            format!(
                "unsupported OVF envelope namespace '{namespace}' (known: OVF 0.9, 1.x and 2.x)"
            ),
        )
    })?;
    check_version_attribute(&root, &namespace, ovf_version)?;

    // oVirt writes its own sections into the OVF namespace; they are not
    // DMTF sections and carry no ovf:required, so they are only noted.
    let lenient_sections = namespace == names::OVF_1_OVIRT;
    let mut ctx = Ctx {
        ignored: Vec::new(),
        warnings,
        lenient_sections,
    };
    let mut env = Envelope {
        ovf_version,
        namespace,
        references: Vec::new(),
        disks: Vec::new(),
        networks: Vec::new(),
        configurations: Vec::new(),
        content: None,
        ignored: Vec::new(),
        warnings: Vec::new(),
    };
    let mut disk_elements = Vec::new();
    let mut strings_refs = Vec::new();
    for child in &root.children {
        if !is_ovf_namespace(child.ns.as_deref()) {
            ctx.other_section(child, "Envelope")?;
            continue;
        }
        match child.name.as_str() {
            "References" => env.references = parse_references(child)?,
            "DiskSection" => {
                for disk in child.children_named("Disk") {
                    disk_elements.push(disk);
                }
            }
            "NetworkSection" => env.networks = parse_networks(child),
            "DeploymentOptionSection" => env.configurations = parse_configurations(child)?,
            "VirtualSystem" | "VirtualSystemCollection" => {
                if env.content.is_some() {
                    return Err(DescriptorError::at(child, "the envelope has more than one top-level VirtualSystem or VirtualSystemCollection"));
                }
                env.content = Some(parse_content(child, &mut ctx)?);
            }
            "Strings" => {
                if let Some(file_ref) = ovf_attr(child, "fileRef") {
                    strings_refs.push((child, file_ref.to_string()));
                }
            }
            "Info" | "Name" | "Annotation" => {}
            _ => ctx.other_section(child, "Envelope")?,
        }
    }
    for disk in disk_elements {
        let def = parse_disk(disk, &env)?;
        if env.disks.iter().any(|d| d.disk_id == def.disk_id) {
            return Err(DescriptorError::at(
                disk,
                format!("diskId '{}' is used by more than one Disk", def.disk_id),
            ));
        }
        env.disks.push(def);
    }
    if env.content.is_none() {
        if !root.children.is_empty() {
            return Err(DescriptorError::at(&root, "the envelope has no VirtualSystem or VirtualSystemCollection: there is nothing to run"));
        }
        ctx.warnings
            .push("the envelope is empty: there is nothing to run".into());
    }
    for (element, file_ref) in strings_refs {
        if env.reference(&file_ref).is_none() {
            ctx.warnings.push(format!(
                "line {}: message bundle (Strings) refers to file '{file_ref}', which References does not list; its texts are not available",
                element.line
            ));
        }
    }
    env.ignored = ctx.ignored;
    env.warnings = ctx.warnings;
    super::validate::check(&env, &root)?;
    Ok(env)
}

/// The envelope's namespace. Some exporters (ovftool 3.5 for SLES) write
/// the elements in no namespace and only the attributes with `ovf:`; then
/// the attributes' namespace says which OVF this is.
fn envelope_namespace(root: &Element) -> Result<String> {
    if let Some(ns) = &root.ns {
        return Ok(ns.to_string());
    }
    root.attrs
        .iter()
        .filter_map(|a| a.ns.as_deref())
        .find(|ns| version_of_namespace(ns).is_some())
        .or_else(|| find_ovf_attr_ns(root))
        .map(str::to_string)
        .ok_or_else(|| {
            DescriptorError::at(
                root,
                "<Envelope> is in no namespace and uses no OVF attributes: not an OVF descriptor",
            )
        })
}

fn find_ovf_attr_ns(element: &Element) -> Option<&str> {
    element.children.iter().find_map(|c| {
        c.attrs
            .iter()
            .filter_map(|a| a.ns.as_deref())
            .find(|ns| version_of_namespace(ns).is_some())
            .or_else(|| find_ovf_attr_ns(c))
    })
}

fn check_version_attribute(root: &Element, namespace: &str, version: OvfVersion) -> Result<()> {
    let Some(declared) = ovf_attr(root, "version").map(str::trim) else {
        return Ok(());
    };
    let fits = match version {
        OvfVersion::V0_9 => declared.starts_with("0.9"),
        OvfVersion::V1 if namespace == names::OVF_1_OVIRT => true, // oVirt writes its engine version here
        OvfVersion::V1 => declared.starts_with("1.") || declared == "1",
        OvfVersion::V2 => declared.starts_with("2.") || declared == "2",
    };
    if fits {
        Ok(())
    } else {
        Err(DescriptorError::at(
            root,
            format!(
                "ovf:version=\"{declared}\" does not match the envelope namespace '{namespace}'"
            ),
        ))
    }
}

pub(super) fn parse_u64(element: &Element, attr: &str, value: &str) -> Result<u64> {
    let v = value.trim();
    if v.starts_with('-') {
        return Err(DescriptorError::at(
            element,
            format!("{attr}=\"{v}\" is negative"),
        ));
    }
    v.parse::<u64>().map_err(|_| {
        DescriptorError::at(
            element,
            format!("{attr}=\"{v}\" is not a whole number that fits in 64 bits"),
        )
    })
}

fn parse_references(section: &Element) -> Result<Vec<FileReference>> {
    let mut out: Vec<FileReference> = Vec::new();
    for file in section.children_named("File") {
        let id =
            ovf_attr(file, "id").ok_or_else(|| DescriptorError::at(file, "File has no ovf:id"))?;
        let href = ovf_attr(file, "href")
            .ok_or_else(|| DescriptorError::at(file, format!("File '{id}' has no ovf:href")))?;
        if out.iter().any(|f| f.id == id) {
            return Err(DescriptorError::at(
                file,
                format!("file id '{id}' is used by more than one File"),
            ));
        }
        let size = ovf_attr(file, "size")
            .map(|s| parse_u64(file, "ovf:size", s))
            .transpose()?;
        let chunk_size = ovf_attr(file, "chunkSize")
            .map(|s| parse_u64(file, "ovf:chunkSize", s))
            .transpose()?;
        if chunk_size == Some(0) {
            return Err(DescriptorError::at(
                file,
                format!("File '{id}' has ovf:chunkSize=\"0\""),
            ));
        }
        let compression = ovf_attr(file, "compression").map(|c| c.trim().to_ascii_lowercase());
        if let Some(c) = &compression {
            if c != "gzip" && c != "identity" {
                return Err(DescriptorError::at(
                    file,
                    format!("File '{id}' uses compression \"{c}\"; only gzip and identity exist"),
                ));
            }
        }
        out.push(FileReference {
            id: id.into(),
            href: href.into(),
            size,
            compression,
            chunk_size,
        });
    }
    Ok(out)
}

fn parse_networks(section: &Element) -> Vec<NetworkDefinition> {
    section
        .children_named("Network")
        .filter_map(|n| {
            Some(NetworkDefinition {
                name: ovf_attr(n, "name")?.to_string(),
                description: n.child_text("Description").map(str::to_string),
            })
        })
        .collect()
}

fn parse_configurations(section: &Element) -> Result<Vec<Configuration>> {
    let mut out: Vec<Configuration> = Vec::new();
    for c in section.children_named("Configuration") {
        let id = ovf_attr(c, "id")
            .ok_or_else(|| DescriptorError::at(c, "Configuration has no ovf:id"))?;
        if out.iter().any(|o| o.id == id) {
            return Err(DescriptorError::at(
                c,
                format!("configuration id '{id}' appears twice"),
            ));
        }
        out.push(Configuration {
            id: id.into(),
            label: c.child_text("Label").map(str::to_string),
            description: c.child_text("Description").map(str::to_string),
            default: ovf_attr(c, "default").is_some_and(|d| d.trim() == "true"),
        });
    }
    Ok(out)
}

fn parse_disk(disk: &Element, env: &Envelope) -> Result<DiskDefinition> {
    let disk_id = ovf_attr(disk, "diskId")
        .ok_or_else(|| DescriptorError::at(disk, "Disk has no ovf:diskId"))?;
    // oVirt gives the size in GiB as ovf:size instead of ovf:capacity.
    let ovirt_size = (env.namespace == names::OVF_1_OVIRT)
        .then(|| ovf_attr(disk, "size"))
        .flatten();
    let raw = match ovf_attr(disk, "capacity").or(ovirt_size) {
        Some(raw) => raw,
        // oVirt describes direct LUNs without a size; nothing in them can be booted from the package.
        None if env.namespace == names::OVF_1_OVIRT => "0",
        None => {
            return Err(DescriptorError::at(
                disk,
                format!("Disk '{disk_id}' has no ovf:capacity"),
            ))
        }
    };
    let capacity_property = raw
        .trim()
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix('}'))
        .map(str::to_string);
    let quantity = match &capacity_property {
        Some(key) => match property_value(env, key) {
            // Decided by the final value (properties::apply_to_envelope).
            Some(None) => 0,
            Some(Some(value)) => parse_u64(disk, &format!("property {key}"), &value)?,
            None => {
                return Err(DescriptorError::at(
                    disk,
                    format!("Disk '{disk_id}' capacity refers to property '{key}', which the descriptor does not declare"),
                ))
            }
        },
        None => parse_u64(disk, "ovf:capacity", raw)?,
    };
    let default_units = if ovf_attr(disk, "capacity").is_none() {
        "byte * 2^30"
    } else {
        "byte"
    };
    let unit_text = ovf_attr(disk, "capacityAllocationUnits").unwrap_or(default_units);
    let capacity_bytes = units::to_bytes(quantity, unit_text)
        .map_err(|m| DescriptorError::at(disk, format!("Disk '{disk_id}' capacity: {m}")))?;
    if capacity_bytes > MAX_DISK_BYTES {
        return Err(DescriptorError::at(
            disk,
            format!(
                "Disk '{disk_id}' capacity of {capacity_bytes} bytes is beyond the 2^56-byte limit"
            ),
        ));
    }
    let populated_size = ovf_attr(disk, "populatedSize")
        .map(|s| parse_u64(disk, "ovf:populatedSize", s))
        .transpose()?;
    Ok(DiskDefinition {
        disk_id: disk_id.into(),
        file_ref: ovf_attr(disk, "fileRef")
            .map(str::to_string)
            .filter(|f| !f.is_empty()),
        capacity_bytes,
        capacity_property,
        capacity_units: unit_text.to_string(),
        populated_size,
        format: ovf_attr(disk, "format").map(str::to_string),
        parent_ref: ovf_attr(disk, "parentRef")
            .map(str::to_string)
            .filter(|p| !p.is_empty()),
    })
}

/// Disks larger than 64 PiB are refused as absurd (and keep offsets far from overflow).
pub const MAX_DISK_BYTES: u64 = 1 << 56;

/// `None`: no such property; `Some(None)`: declared without a value.
fn property_value(env: &Envelope, key: &str) -> Option<Option<String>> {
    let content = env.content.as_ref()?;
    let mut products: Vec<&Product> = content.products().iter().collect();
    for vs in content.systems() {
        products.extend(vs.products.iter());
    }
    products
        .iter()
        .flat_map(|p| p.properties.iter())
        .find(|p| p.key == key || p.full_key == key)
        .map(|p| p.value.clone())
}

impl Ctx {
    /// A child we do not model: record it as ignored, or fail when it is
    /// required and unknown (DSP0243: a consumer must refuse a required
    /// section it does not understand).
    pub(super) fn other_section(&mut self, element: &Element, context: &str) -> Result<()> {
        let name = qualified(element);
        if let Some((_, reason)) = names::UNDERSTOOD_ELSEWHERE
            .iter()
            .find(|(n, _)| *n == element.name)
        {
            self.ignored.push(Ignored {
                context: context.into(),
                element: name,
                reason: (*reason).into(),
                line: element.line,
            });
            return Ok(());
        }
        let undeclared = element
            .ns
            .as_deref()
            .is_some_and(|n| n.starts_with(crate::xml::UNDECLARED_PREFIX_NS));
        if undeclared || self.lenient_sections {
            self.ignored.push(Ignored {
                context: context.into(),
                element: name,
                reason: if undeclared {
                    "its namespace prefix is not declared".into()
                } else {
                    "not a DMTF section (oVirt dialect)".into()
                },
                line: element.line,
            });
            return Ok(());
        }
        let looks_like_section =
            element.name.ends_with("Section") || !is_ovf_namespace(element.ns.as_deref());
        if looks_like_section && is_required(element) && !is_ovf_namespace(element.ns.as_deref()) {
            return Err(DescriptorError::at(
                element,
                format!("{name} in {context} is required (ovf:required is not \"false\") but ovf-run does not understand it"),
            ));
        }
        if looks_like_section && is_required(element) {
            return Err(DescriptorError::at(
                element,
                format!("unknown required OVF section {name} in {context}"),
            ));
        }
        let reason = if ovf_attr(element, "required").is_some() && !is_required(element) {
            "optional extension (ovf:required=\"false\")"
        } else {
            "element ovf-run does not use; it is not a required section"
        };
        self.ignored.push(Ignored {
            context: context.into(),
            element: name,
            reason: reason.into(),
            line: element.line,
        });
        Ok(())
    }
}
