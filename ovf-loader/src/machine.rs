//! From OVF virtual hardware to a plain machine description.
//!
//! `MachineSpec` is what the rest of ovf-run needs to know about the
//! hardware, in plain terms (counts, bytes, disks in boot order, NICs); the
//! monitor never sees OVF. Anything the descriptor asks for that ovf-run does
//! not build is listed in `ignored`, with the reason, so `inspect` can show it.

use crate::model::{DiskDefinition, Envelope, HardwareSection, Item, VirtualSystem};
use crate::units;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct MachineSpec {
    pub system_id: String,
    pub name: Option<String>,
    /// The deployment option the hardware was taken for.
    pub configuration: Option<String>,
    pub vcpus: u32,
    pub memory_bytes: u64,
    /// In boot order: the first is the boot disk.
    pub disks: Vec<DiskSpec>,
    pub cdroms: Vec<CdromSpec>,
    pub nics: Vec<NicSpec>,
    /// The firmware the package names (`vmw:Config firmware`): a layout
    /// hint, not a requirement (the kernel is booted directly either way).
    pub firmware: Option<crate::model::FirmwareHint>,
    pub ignored: Vec<IgnoredItem>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ControllerSpec {
    /// `ide`, `scsi`, `sata`, `nvme`, `virtio` or `other`.
    pub kind: String,
    pub sub_type: Option<String>,
    pub instance_id: String,
    pub address: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiskSpec {
    pub disk_id: String,
    /// The `References/File` id holding the image; `None` for a blank disk.
    pub file_ref: Option<String>,
    pub capacity_bytes: u64,
    pub format: Option<String>,
    pub controller: Option<ControllerSpec>,
    pub address_on_parent: Option<String>,
    pub item_instance_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CdromSpec {
    /// The file in the package to attach read-only.
    pub file_ref: String,
    pub controller: Option<ControllerSpec>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NicSpec {
    pub network: Option<String>,
    /// Adapter the descriptor names (`VmxNet3`, `E1000`…); ovf-run gives virtio-net.
    pub model: Option<String>,
    pub mac: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IgnoredItem {
    pub instance_id: String,
    pub resource_type: u32,
    pub name: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MachineError {
    #[error("the package has no virtual system to run")]
    NoSystem,
    #[error("the package holds {count} virtual systems ({ids}); ovf-run runs one: choose it with --system ID")]
    SeveralSystems { count: usize, ids: String },
    #[error("no virtual system has id '{0}'")]
    UnknownSystem(String),
    #[error("no deployment option is called '{name}' (the package has: {known})")]
    UnknownConfiguration { name: String, known: String },
    #[error("virtual system '{0}' has no VirtualHardwareSection")]
    NoHardware(String),
    #[error("line {line}: {message}")]
    Item { line: u32, message: String },
}

/// Largest memory size accepted from a descriptor (1 TiB); beyond is a typo or an attack.
const MAX_MEMORY_BYTES: u64 = 1 << 40;
const MAX_VCPUS: u64 = 255;

/// Map the chosen system's hardware for the chosen (or default) configuration.
pub fn machine_spec(
    env: &Envelope,
    system: Option<&str>,
    configuration: Option<&str>,
) -> Result<MachineSpec, MachineError> {
    let systems = env.systems();
    let vs: &VirtualSystem = match system {
        Some(id) => systems
            .iter()
            .find(|s| s.id == id)
            .copied()
            .ok_or_else(|| MachineError::UnknownSystem(id.into()))?,
        None => match systems.as_slice() {
            [] => return Err(MachineError::NoSystem),
            [one] => one,
            many => {
                return Err(MachineError::SeveralSystems {
                    count: many.len(),
                    ids: many
                        .iter()
                        .map(|s| s.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        },
    };
    let configuration = match configuration {
        Some(name) => {
            if !env.configurations.iter().any(|c| c.id == name) {
                return Err(MachineError::UnknownConfiguration {
                    name: name.into(),
                    known: env
                        .configurations
                        .iter()
                        .map(|c| c.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            Some(name.to_string())
        }
        None => env.default_configuration().map(|c| c.id.clone()),
    };
    let hw = pick_hardware(vs)?;
    let items = effective_items(hw, configuration.as_deref());
    let mut spec = MachineSpec {
        system_id: vs.id.clone(),
        name: vs.name.clone(),
        configuration,
        vcpus: 1,
        memory_bytes: 0,
        disks: Vec::new(),
        cdroms: Vec::new(),
        nics: Vec::new(),
        firmware: hw.firmware,
        ignored: Vec::new(),
        warnings: Vec::new(),
    };
    let mut disks: Vec<(usize, DiskSpec)> = Vec::new();
    for item in &items {
        match item.resource_type {
            3 => {
                let n = item.virtual_quantity.unwrap_or(1);
                if n == 0 || n > MAX_VCPUS {
                    return Err(item_err(
                        item,
                        format!("{n} virtual CPUs is out of range (1 to {MAX_VCPUS})"),
                    ));
                }
                spec.vcpus = n as u32;
            }
            4 => spec.memory_bytes = memory_bytes(item, &mut spec.warnings)?,
            17 | 31 | 32 | 19 => match disk_of(env, item) {
                Some(def) => disks.push((
                    controller_rank(&items, item),
                    DiskSpec {
                        disk_id: def.disk_id.clone(),
                        file_ref: def.file_ref.clone(),
                        capacity_bytes: def.capacity_bytes,
                        format: def.format.clone(),
                        controller: controller_of(&items, item),
                        address_on_parent: item.address_on_parent.clone(),
                        item_instance_id: item.instance_id.clone(),
                    },
                )),
                None => match blank_disk_bytes(item) {
                    // OVF 2 StorageItems may describe a blank disk by size alone.
                    Some(capacity_bytes) => disks.push((
                        controller_rank(&items, item),
                        DiskSpec {
                            disk_id: format!("item-{}", item.instance_id),
                            file_ref: None,
                            capacity_bytes,
                            format: None,
                            controller: controller_of(&items, item),
                            address_on_parent: item.address_on_parent.clone(),
                            item_instance_id: item.instance_id.clone(),
                        },
                    )),
                    None => ignore(
                        &mut spec,
                        item,
                        "disk drive without a disk from DiskSection",
                    ),
                },
            },
            15 | 16 => match file_of(item) {
                Some(file_ref) if env.reference(&file_ref).is_some() => {
                    spec.cdroms.push(CdromSpec {
                        file_ref,
                        controller: controller_of(&items, item),
                    })
                }
                _ => ignore(&mut spec, item, "empty CD/DVD drive"),
            },
            10 | 11 => spec.nics.push(NicSpec {
                network: item.connections.first().cloned(),
                model: item.resource_sub_type.clone(),
                mac: item.address.clone().filter(|a| looks_like_mac(a)),
            }),
            5 | 6 | 20 | 7 | 8 => {} // controllers: recorded through the disks on them
            14 => ignore(&mut spec, item, "floppy drives are not provided"),
            21 => ignore(
                &mut spec,
                item,
                "serial ports: the console is the first serial port ovf-run provides",
            ),
            22 => ignore(&mut spec, item, "parallel ports are not provided"),
            23 => ignore(&mut spec, item, "USB is not provided"),
            24 => ignore(&mut spec, item, "no graphics: the console is serial"),
            35 => ignore(&mut spec, item, "sound is not provided"),
            _ => {
                let what = item.resource_sub_type.as_deref().unwrap_or("device");
                let reason = format!(
                    "{what} (ResourceType {}) is not provided",
                    item.resource_type
                );
                ignore(&mut spec, item, &reason)
            }
        }
    }
    if spec.memory_bytes == 0 {
        spec.warnings
            .push("the hardware gives no memory size; using 512 MiB".into());
        spec.memory_bytes = 512 << 20;
    }
    disks.sort_by(|a, b| {
        let key = |(rank, d): &(usize, DiskSpec)| {
            let addr = d
                .controller
                .as_ref()
                .and_then(|c| c.address.as_deref())
                .and_then(|a| a.parse::<u64>().ok());
            let unit = d
                .address_on_parent
                .as_deref()
                .and_then(|a| a.parse::<u64>().ok());
            (*rank, addr.unwrap_or(0), unit.unwrap_or(u64::MAX))
        };
        key(a).cmp(&key(b))
    });
    spec.disks = disks.into_iter().map(|(_, d)| d).collect();
    Ok(spec)
}

/// The first hardware section whose VirtualSystemType ovf-run can honour;
/// they differ only in the hypervisor they target, so the first one is as good.
fn pick_hardware(vs: &VirtualSystem) -> Result<&HardwareSection, MachineError> {
    vs.hardware
        .first()
        .ok_or_else(|| MachineError::NoHardware(vs.id.clone()))
}

/// Items valid for `configuration`, with configuration-specific items
/// replacing earlier ones of the same InstanceID, and only `normal` bounds.
fn effective_items<'a>(hw: &'a HardwareSection, configuration: Option<&str>) -> Vec<&'a Item> {
    let mut out: Vec<&Item> = Vec::new();
    for item in &hw.items {
        if item.bound.as_deref().is_some_and(|b| b != "normal") {
            continue;
        }
        let applies = item.configurations.is_empty()
            || configuration.is_some_and(|c| item.configurations.iter().any(|x| x == c));
        if !applies {
            continue;
        }
        match out.iter().position(|o| o.instance_id == item.instance_id) {
            Some(i) => out[i] = item,
            None => out.push(item),
        }
    }
    out
}

fn item_err(item: &Item, message: String) -> MachineError {
    MachineError::Item {
        line: item.line,
        message: format!("Item {}: {message}", item.instance_id),
    }
}

fn memory_bytes(item: &Item, warnings: &mut Vec<String>) -> Result<u64, MachineError> {
    let quantity = item
        .virtual_quantity
        .ok_or_else(|| item_err(item, "memory item has no VirtualQuantity".into()))?;
    let units = match &item.allocation_units {
        Some(u) => u.as_str(),
        None => {
            warnings.push(format!(
                "memory item {} has no AllocationUnits; taking {quantity} as MB",
                item.instance_id
            ));
            "MegaBytes"
        }
    };
    let bytes = units::to_bytes(quantity, units).map_err(|m| item_err(item, m))?;
    if bytes == 0 || bytes > MAX_MEMORY_BYTES {
        return Err(item_err(
            item,
            format!("memory of {bytes} bytes is out of range (up to 1 TiB)"),
        ));
    }
    Ok(bytes)
}

fn host_resource_id<'a>(item: &'a Item, kind: &str) -> Option<&'a str> {
    item.host_resources.iter().find_map(|r| {
        let path = r
            .strip_prefix("ovf://")
            .or_else(|| r.strip_prefix("ovf:/"))
            .or_else(|| r.strip_prefix('/'))?;
        path.strip_prefix(kind)?.strip_prefix('/')
    })
}

fn disk_of<'a>(env: &'a Envelope, item: &Item) -> Option<&'a DiskDefinition> {
    if let Some(id) = host_resource_id(item, "disk") {
        return env.disk(id);
    }
    // oVirt names the image (`group/image`) instead of `ovf:/disk/ID`.
    let resource = item.host_resources.first()?;
    env.disks.iter().find(|d| {
        d.file_ref.as_deref() == Some(resource.as_str())
            || resource.ends_with(&format!("/{}", d.disk_id))
    })
}

fn blank_disk_bytes(item: &Item) -> Option<u64> {
    if !item.host_resources.is_empty() {
        return None;
    }
    let bytes = units::to_bytes(item.virtual_quantity?, item.allocation_units.as_deref()?).ok()?;
    (bytes > 0 && bytes <= crate::model::MAX_DISK_BYTES).then_some(bytes)
}

fn file_of(item: &Item) -> Option<String> {
    host_resource_id(item, "file").map(str::to_string)
}

fn controller_item<'a>(items: &[&'a Item], item: &Item) -> Option<&'a Item> {
    let parent = item.parent.as_ref()?;
    items.iter().find(|i| &i.instance_id == parent).copied()
}

fn controller_kind(c: &Item) -> &'static str {
    let sub = c
        .resource_sub_type
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match c.resource_type {
        5 => "ide",
        6 if sub.contains("virtio") => "virtio",
        6 => "scsi",
        20 if sub.contains("nvme") => "nvme",
        20 if sub.contains("sata") || sub.contains("ahci") => "sata",
        20 if sub.contains("virtio") => "virtio",
        // "Other storage" without a subtype is what COT writes for SATA, and
        // how virt-v2v reads it.
        20 if sub.is_empty() => "sata",
        _ => "other",
    }
}

fn controller_of(items: &[&Item], item: &Item) -> Option<ControllerSpec> {
    let c = controller_item(items, item)?;
    Some(ControllerSpec {
        kind: controller_kind(c).into(),
        sub_type: c.resource_sub_type.clone(),
        instance_id: c.instance_id.clone(),
        address: c.address.clone(),
    })
}

/// BIOS-like order: IDE, SATA, SCSI, virtio, NVMe, then the rest.
fn controller_rank(items: &[&Item], item: &Item) -> usize {
    match controller_item(items, item).map(controller_kind) {
        Some("ide") => 0,
        Some("sata") => 1,
        Some("scsi") => 2,
        Some("virtio") => 3,
        Some("nvme") => 4,
        _ => 5,
    }
}

fn looks_like_mac(a: &str) -> bool {
    let parts: Vec<&str> = a.split([':', '-']).collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn ignore(spec: &mut MachineSpec, item: &Item, reason: &str) {
    spec.ignored.push(IgnoredItem {
        instance_id: item.instance_id.clone(),
        resource_type: item.resource_type,
        name: item.element_name.clone(),
        reason: reason.into(),
    });
}
