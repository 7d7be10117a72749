//! Cross-references a schema cannot check: ids that must exist and be unique.

use super::envelope::{DescriptorError, Result};
use super::*;
use crate::xml::Element;

pub(super) fn check(env: &Envelope, root: &Element) -> Result<()> {
    for disk in &env.disks {
        if let Some(file) = &disk.file_ref {
            if env.reference(file).is_none() && !env.references.iter().any(|r| &r.href == file) {
                return Err(at(
                    root,
                    0,
                    format!(
                        "Disk '{}' refers to file '{file}', which References does not list",
                        disk.disk_id
                    ),
                ));
            }
        }
        if let Some(parent) = &disk.parent_ref {
            if env.disk(parent).is_none() {
                return Err(at(
                    root,
                    0,
                    format!(
                        "Disk '{}' has parentRef '{parent}', which is not a disk",
                        disk.disk_id
                    ),
                ));
            }
        }
    }
    if let Some(content) = &env.content {
        check_content(env, content, root)?;
    }
    Ok(())
}

fn at(root: &Element, line: u32, message: String) -> DescriptorError {
    if line == 0 {
        DescriptorError::at(root, message)
    } else {
        DescriptorError {
            line,
            column: 1,
            message,
        }
    }
}

fn check_content(env: &Envelope, content: &Content, root: &Element) -> Result<()> {
    match content {
        Content::VirtualSystem(vs) => {
            for hw in &vs.hardware {
                check_hardware(env, vs, hw, root)?;
            }
        }
        Content::VirtualSystemCollection(c) => {
            for entry in &c.startup {
                if !c.members.iter().any(|m| m.id() == entry.id) {
                    return Err(at(
                        root,
                        0,
                        format!("StartupSection of '{}' names '{}', which is not a member of the collection", c.id, entry.id),
                    ));
                }
            }
            for member in &c.members {
                check_content(env, member, root)?;
            }
        }
    }
    Ok(())
}

fn overlaps(a: &Item, b: &Item) -> bool {
    let same_bound =
        a.bound.as_deref().unwrap_or("normal") == b.bound.as_deref().unwrap_or("normal");
    // Configuration-specific items may override an unconditional one, and
    // each other, with the same InstanceID: VMware writes it so and the last
    // one for the chosen configuration wins. Two unconditional items with
    // one InstanceID are a conflict.
    let configs = a.configurations.is_empty() && b.configurations.is_empty();
    same_bound && configs
}

fn check_hardware(
    env: &Envelope,
    vs: &VirtualSystem,
    hw: &HardwareSection,
    root: &Element,
) -> Result<()> {
    for (i, item) in hw.items.iter().enumerate() {
        if hw.items[..i]
            .iter()
            .any(|o| o.instance_id == item.instance_id && overlaps(o, item))
        {
            return Err(at(
                root,
                item.line,
                format!(
                    "InstanceID {} is used by more than one Item in the hardware of '{}'",
                    item.instance_id, vs.id
                ),
            ));
        }
        // oVirt writes an all-zero Parent for items without one.
        let ovirt = env.namespace == super::names::OVF_1_OVIRT;
        if let Some(parent) = item.parent.as_ref().filter(|_| !ovirt) {
            if !hw.items.iter().any(|o| &o.instance_id == parent) {
                return Err(at(
                    root,
                    item.line,
                    format!(
                        "Item {} has Parent {parent}, which is not an Item",
                        item.instance_id
                    ),
                ));
            }
        }
        for resource in &item.host_resources {
            check_host_resource(env, item, resource, root)?;
        }
    }
    Ok(())
}

/// `ovf:/disk/ID` and `ovf:/file/ID` (also written `ovf://disk/ID`).
fn check_host_resource(env: &Envelope, item: &Item, resource: &str, root: &Element) -> Result<()> {
    let path = resource
        .strip_prefix("ovf://")
        .or_else(|| resource.strip_prefix("ovf:/"))
        .or_else(|| resource.strip_prefix("/"));
    let Some(path) = path else { return Ok(()) };
    if let Some(id) = path.strip_prefix("disk/") {
        if env.disk(id).is_none() {
            return Err(at(
                root,
                item.line,
                format!(
                    "Item {} uses disk '{id}', which DiskSection does not define",
                    item.instance_id
                ),
            ));
        }
    } else if let Some(id) = path.strip_prefix("file/") {
        if env.reference(id).is_none() {
            return Err(at(
                root,
                item.line,
                format!(
                    "Item {} uses file '{id}', which References does not list",
                    item.instance_id
                ),
            ));
        }
    }
    Ok(())
}
