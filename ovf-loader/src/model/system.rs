//! VirtualSystem, VirtualSystemCollection and the sections inside them.

use super::envelope::{parse_u64, DescriptorError, Result};
use super::names::{is_cim_namespace, is_ovf_namespace, is_required, ovf_attr};
use super::*;
use crate::xml::Element;

/// What parsing collects on the side.
pub(super) struct Ctx {
    pub ignored: Vec<Ignored>,
    pub warnings: Vec<String>,
    pub lenient_sections: bool,
}

pub(super) fn parse_content(element: &Element, ctx: &mut Ctx) -> Result<Content> {
    let id = ovf_attr(element, "id").unwrap_or_default().to_string();
    if element.name == "VirtualSystemCollection" {
        parse_collection(element, id, ctx).map(Content::VirtualSystemCollection)
    } else {
        parse_system(element, id, ctx).map(Content::VirtualSystem)
    }
}

fn parse_collection(
    element: &Element,
    id: String,
    ctx: &mut Ctx,
) -> Result<VirtualSystemCollection> {
    let context = format!("VirtualSystemCollection '{id}'");
    let mut c = VirtualSystemCollection {
        id,
        name: element.child_text("Name").map(str::to_string),
        info: element.child_text("Info").map(str::to_string),
        products: Vec::new(),
        eulas: Vec::new(),
        annotation: None,
        startup: Vec::new(),
        members: Vec::new(),
    };
    for child in &element.children {
        if !is_ovf_namespace(child.ns.as_deref()) {
            ctx.other_section(child, &context)?;
            continue;
        }
        match child.name.as_str() {
            "VirtualSystem" | "VirtualSystemCollection" => {
                c.members.push(parse_content(child, ctx)?)
            }
            "ProductSection" => c.products.push(parse_product(child, ctx)?),
            "EulaSection" => c.eulas.push(parse_eula(child)),
            "AnnotationSection" => {
                c.annotation = child.child_text("Annotation").map(str::to_string)
            }
            "StartupSection" => {
                c.startup = child
                    .children_named("Item")
                    .map(|i| StartupEntry {
                        id: ovf_attr(i, "id").unwrap_or_default().to_string(),
                        order: ovf_attr(i, "order").and_then(|o| o.trim().parse().ok()),
                    })
                    .collect();
                ctx.other_section(child, &context)?;
            }
            "Info" | "Name" => {}
            _ => ctx.other_section(child, &context)?,
        }
    }
    Ok(c)
}

fn parse_system(element: &Element, id: String, ctx: &mut Ctx) -> Result<VirtualSystem> {
    let context = format!("VirtualSystem '{id}'");
    let mut vs = VirtualSystem {
        id,
        name: element.child_text("Name").map(str::to_string),
        info: element.child_text("Info").map(str::to_string),
        products: Vec::new(),
        eulas: Vec::new(),
        annotation: None,
        operating_system: None,
        hardware: Vec::new(),
    };
    for child in &element.children {
        if !is_ovf_namespace(child.ns.as_deref()) {
            ctx.other_section(child, &context)?;
            continue;
        }
        match child.name.as_str() {
            "ProductSection" => vs.products.push(parse_product(child, ctx)?),
            "EulaSection" => vs.eulas.push(parse_eula(child)),
            "AnnotationSection" => {
                vs.annotation = child.child_text("Annotation").map(str::to_string)
            }
            "OperatingSystemSection" => {
                vs.operating_system = Some(OperatingSystem {
                    id: ovf_attr(child, "id").and_then(|i| i.trim().parse().ok()),
                    os_type: child
                        .attr_where("osType", |ns| ns.is_some_and(|n| n.contains("vmware")))
                        .map(str::to_string),
                    description: child.child_text("Description").map(str::to_string),
                })
            }
            "VirtualHardwareSection" => vs.hardware.push(parse_hardware(child, &context, ctx)?),
            "Info" | "Name" => {}
            _ => ctx.other_section(child, &context)?,
        }
    }
    Ok(vs)
}

fn parse_product(section: &Element, ctx: &mut Ctx) -> Result<Product> {
    let class = ovf_attr(section, "class").map(str::to_string);
    let instance = ovf_attr(section, "instance").map(str::to_string);
    let text = |name: &str| section.child_text(name).map(str::to_string);
    let mut product = Product {
        class: class.clone(),
        instance: instance.clone(),
        product: text("Product"),
        vendor: text("Vendor"),
        version: text("Version"),
        full_version: text("FullVersion"),
        product_url: text("ProductUrl"),
        vendor_url: text("VendorUrl"),
        app_url: text("AppUrl"),
        properties: Vec::new(),
    };
    let mut category: Option<String> = None;
    for child in &section.children {
        match child.name.as_str() {
            "Category" => category = Some(child.text.trim().to_string()).filter(|c| !c.is_empty()),
            "Property" => {
                let key = ovf_attr(child, "key")
                    .ok_or_else(|| DescriptorError::at(child, "Property has no ovf:key"))?
                    .to_string();
                if key.contains('.') || key.contains(':') {
                    ctx.warnings.push(format!(
                        "line {}: property key '{key}' contains '.' or ':', which DSP0243 does not allow",
                        child.line
                    ));
                }
                let full_key = [class.as_deref(), Some(key.as_str()), instance.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(".");
                let flag = |name: &str| ovf_attr(child, name).is_some_and(|v| v.trim() == "true");
                product.properties.push(Property {
                    full_key,
                    value_type: ovf_attr(child, "type").unwrap_or("string").to_string(),
                    qualifiers: ovf_attr(child, "qualifiers").map(str::to_string),
                    value: ovf_attr(child, "value").map(str::to_string),
                    user_configurable: flag("userConfigurable"),
                    password: flag("password"),
                    label: child.child_text("Label").map(str::to_string),
                    description: child.child_text("Description").map(str::to_string),
                    category: category.clone(),
                    configuration_values: child
                        .children_named("Value")
                        .filter_map(|v| {
                            Some((
                                ovf_attr(v, "configuration")?.to_string(),
                                ovf_attr(v, "value")?.to_string(),
                            ))
                        })
                        .collect(),
                    key,
                });
            }
            _ => {}
        }
    }
    Ok(product)
}

fn parse_eula(section: &Element) -> Eula {
    Eula {
        info: section.child_text("Info").map(str::to_string),
        license: section
            .child("License")
            .map(|l| l.text.trim().to_string())
            .unwrap_or_default(),
    }
}

fn parse_hardware(section: &Element, context: &str, ctx: &mut Ctx) -> Result<HardwareSection> {
    let context = format!("VirtualHardwareSection of {context}");
    let mut hw = HardwareSection {
        id: ovf_attr(section, "id").map(str::to_string),
        transport: ovf_attr(section, "transport")
            .map(|t| t.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        system_types: Vec::new(),
        items: Vec::new(),
        firmware: None,
    };
    for child in &section.children {
        if let Some(hint) = vmware_firmware(child) {
            hw.firmware = Some(hint);
            continue;
        }
        match child.name.as_str() {
            "System" => {
                if let Some(t) = child.child_text("VirtualSystemType") {
                    hw.system_types = t
                        .split(|c: char| c == ',' || c.is_whitespace())
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                }
            }
            "Item" | "StorageItem" | "EthernetPortItem"
                if is_ovf_namespace(child.ns.as_deref()) =>
            {
                hw.items.push(parse_item(child)?)
            }
            "Info" => {}
            _ => {
                let explicit_required = ovf_attr(child, "required").is_some() && is_required(child);
                if explicit_required {
                    return Err(DescriptorError::at(
                        child,
                        format!("{} in {context} is marked ovf:required=\"true\" but ovf-run does not understand it", child.name),
                    ));
                }
                ctx.ignored.push(Ignored {
                    context: context.clone(),
                    element: super::names::qualified(child),
                    reason:
                        "vendor setting that does not change the virtual hardware ovf-run builds"
                            .into(),
                    line: child.line,
                });
            }
        }
    }
    Ok(hw)
}

/// `<vmw:Config vmw:key="firmware" vmw:value="efi|bios"/>` (any value other
/// than `efi` is the BIOS, as vSphere treats it).
fn vmware_firmware(child: &Element) -> Option<FirmwareHint> {
    let vmware = |ns: Option<&str>| ns.is_some_and(|n| n.contains("vmware"));
    if child.name != "Config" || !vmware(child.ns.as_deref()) {
        return None;
    }
    if child.attr_where("key", vmware)? != "firmware" {
        return None;
    }
    let value = child.attr_where("value", vmware)?;
    Some(if value.trim().eq_ignore_ascii_case("efi") {
        FirmwareHint::Efi
    } else {
        FirmwareHint::Bios
    })
}

fn parse_item(item: &Element) -> Result<Item> {
    let class = match item.name.as_str() {
        "StorageItem" => ItemClass::StorageItem,
        "EthernetPortItem" => ItemClass::EthernetPortItem,
        _ => ItemClass::Item,
    };
    let field = |name: &str| -> Option<&Element> {
        item.children.iter().find(|c| {
            c.name.eq_ignore_ascii_case(name)
                && (is_cim_namespace(c.ns.as_deref())
                    || c.ns.is_none()
                    || !is_ovf_namespace(c.ns.as_deref()))
        })
    };
    let text = |name: &str| {
        field(name)
            .map(|c| c.text.trim().to_string())
            .filter(|t| !t.is_empty())
    };
    let instance_id =
        text("InstanceID").ok_or_else(|| DescriptorError::at(item, "Item has no InstanceID"))?;
    let resource_type = text("ResourceType").ok_or_else(|| {
        DescriptorError::at(item, format!("Item {instance_id} has no ResourceType"))
    })?;
    let resource_type: u32 = resource_type.parse().map_err(|_| {
        DescriptorError::at(
            item,
            format!(
                "Item {instance_id} has ResourceType \"{resource_type}\", which is not a number"
            ),
        )
    })?;
    let virtual_quantity = match field("VirtualQuantity") {
        Some(q) if !q.text.trim().is_empty() => Some(parse_u64(q, "VirtualQuantity", &q.text)?),
        _ => None,
    };
    let all = |name: &str| -> Vec<String> {
        item.children
            .iter()
            .filter(|c| c.name.eq_ignore_ascii_case(name))
            .map(|c| c.text.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect()
    };
    Ok(Item {
        class,
        instance_id,
        resource_type,
        resource_sub_type: text("ResourceSubType"),
        element_name: text("ElementName").or_else(|| text("Caption")),
        description: text("Description"),
        virtual_quantity,
        allocation_units: text("AllocationUnits"),
        address: text("Address"),
        address_on_parent: text("AddressOnParent"),
        parent: text("Parent"),
        host_resources: all("HostResource"),
        connections: all("Connection"),
        automatic_allocation: text("AutomaticAllocation").map(|a| a == "true"),
        required: is_required(item),
        configurations: ovf_attr(item, "configuration")
            .map(|c| c.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        bound: ovf_attr(item, "bound").map(str::to_string),
        line: item.line,
    })
}
