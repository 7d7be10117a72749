//! The OVF descriptor as data: what an envelope says, before it is mapped
//! to a machine. Field names follow the specification (DSP0243) so a reader
//! can look things up; every type serialises to the documented
//! `inspect --json` form.

mod envelope;
mod names;
mod system;
mod validate;

pub use envelope::{parse_descriptor, DescriptorError, MAX_DISK_BYTES};
pub use names::OvfVersion;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Envelope {
    pub ovf_version: OvfVersion,
    /// The envelope namespace as written in the file.
    pub namespace: String,
    pub references: Vec<FileReference>,
    pub disks: Vec<DiskDefinition>,
    pub networks: Vec<NetworkDefinition>,
    pub configurations: Vec<Configuration>,
    pub content: Option<Content>,
    /// Sections and extension elements that were understood to be optional
    /// and left alone.
    pub ignored: Vec<Ignored>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileReference {
    pub id: String,
    pub href: String,
    pub size: Option<u64>,
    /// `gzip` or `identity` (`None` when absent).
    pub compression: Option<String>,
    pub chunk_size: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiskDefinition {
    pub disk_id: String,
    pub file_ref: Option<String>,
    pub capacity_bytes: u64,
    /// `key` when the capacity is `${key}`: the final property value
    /// decides it ([`crate::properties::apply_to_envelope`]); until then
    /// `capacity_bytes` is from the property's default (0 without one).
    pub capacity_property: Option<String>,
    /// `ovf:capacityAllocationUnits` (or its default), for `${key}` capacities.
    #[serde(skip)]
    pub capacity_units: String,
    pub populated_size: Option<u64>,
    pub format: Option<String>,
    pub parent_ref: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetworkDefinition {
    pub name: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Configuration {
    pub id: String,
    pub label: Option<String>,
    pub description: Option<String>,
    pub default: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    VirtualSystem(VirtualSystem),
    VirtualSystemCollection(VirtualSystemCollection),
}

#[derive(Debug, Clone, Serialize)]
pub struct VirtualSystemCollection {
    pub id: String,
    pub name: Option<String>,
    pub info: Option<String>,
    pub products: Vec<Product>,
    pub eulas: Vec<Eula>,
    pub annotation: Option<String>,
    pub startup: Vec<StartupEntry>,
    pub members: Vec<Content>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StartupEntry {
    pub id: String,
    pub order: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VirtualSystem {
    pub id: String,
    pub name: Option<String>,
    pub info: Option<String>,
    pub products: Vec<Product>,
    pub eulas: Vec<Eula>,
    pub annotation: Option<String>,
    pub operating_system: Option<OperatingSystem>,
    pub hardware: Vec<HardwareSection>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OperatingSystem {
    pub id: Option<u32>,
    pub os_type: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HardwareSection {
    pub id: Option<String>,
    pub transport: Vec<String>,
    pub system_types: Vec<String>,
    pub items: Vec<Item>,
    /// The firmware the exporting hypervisor booted it with (VMware's
    /// `<vmw:Config vmw:key="firmware" vmw:value="efi"/>`): a hint at the
    /// disk's layout (an EFI System Partition, no BIOS boot code).
    pub firmware: Option<FirmwareHint>,
}

/// Firmware named by the package; ovf-run boots the kernel directly either
/// way, so this only tells where the boot files are and what a firmware
/// boot would need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FirmwareHint {
    Bios,
    Efi,
}

/// Which CIM class an item was written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemClass {
    Item,
    StorageItem,
    EthernetPortItem,
}

/// One RASD/SASD/EPASD entry of a VirtualHardwareSection.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub class: ItemClass,
    pub instance_id: String,
    pub resource_type: u32,
    pub resource_sub_type: Option<String>,
    pub element_name: Option<String>,
    pub description: Option<String>,
    pub virtual_quantity: Option<u64>,
    pub allocation_units: Option<String>,
    pub address: Option<String>,
    pub address_on_parent: Option<String>,
    pub parent: Option<String>,
    pub host_resources: Vec<String>,
    pub connections: Vec<String>,
    pub automatic_allocation: Option<bool>,
    pub required: bool,
    /// Deployment configurations this item belongs to (empty: all).
    pub configurations: Vec<String>,
    /// `min`, `max` or `normal` (OVF ranges); `None` is `normal`.
    pub bound: Option<String>,
    pub line: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Product {
    pub class: Option<String>,
    pub instance: Option<String>,
    pub product: Option<String>,
    pub vendor: Option<String>,
    pub version: Option<String>,
    pub full_version: Option<String>,
    pub product_url: Option<String>,
    pub vendor_url: Option<String>,
    pub app_url: Option<String>,
    pub properties: Vec<Property>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Property {
    pub key: String,
    /// `class.key.instance` as the OVF environment names it.
    pub full_key: String,
    #[serde(rename = "type")]
    pub value_type: String,
    pub qualifiers: Option<String>,
    pub value: Option<String>,
    pub user_configurable: bool,
    pub password: bool,
    pub label: Option<String>,
    pub description: Option<String>,
    pub category: Option<String>,
    /// Values for specific deployment configurations.
    pub configuration_values: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Eula {
    pub info: Option<String>,
    pub license: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ignored {
    /// Where it stood (`Envelope`, `VirtualSystem vm1`, …).
    pub context: String,
    /// `prefix-free name` with its namespace, e.g. `{http://www.vmware.com/schema/ovf}IpAssignmentSection`.
    pub element: String,
    pub reason: String,
    pub line: u32,
}

impl Content {
    /// Every VirtualSystem, depth first, in document order.
    pub fn systems(&self) -> Vec<&VirtualSystem> {
        match self {
            Content::VirtualSystem(vs) => vec![vs],
            Content::VirtualSystemCollection(c) => {
                c.members.iter().flat_map(|m| m.systems()).collect()
            }
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Content::VirtualSystem(vs) => &vs.id,
            Content::VirtualSystemCollection(c) => &c.id,
        }
    }

    pub fn products(&self) -> &[Product] {
        match self {
            Content::VirtualSystem(vs) => &vs.products,
            Content::VirtualSystemCollection(c) => &c.products,
        }
    }

    /// Every EULA in the package: the collection's own, then each member's.
    pub fn all_eulas(&self) -> Vec<&Eula> {
        match self {
            Content::VirtualSystem(vs) => vs.eulas.iter().collect(),
            Content::VirtualSystemCollection(c) => c
                .eulas
                .iter()
                .chain(c.members.iter().flat_map(|m| m.all_eulas()))
                .collect(),
        }
    }
}

impl Envelope {
    pub fn systems(&self) -> Vec<&VirtualSystem> {
        self.content
            .as_ref()
            .map(|c| c.systems())
            .unwrap_or_default()
    }

    pub fn default_configuration(&self) -> Option<&Configuration> {
        self.configurations
            .iter()
            .find(|c| c.default)
            .or_else(|| self.configurations.first())
    }

    pub fn reference(&self, id: &str) -> Option<&FileReference> {
        self.references.iter().find(|r| r.id == id)
    }

    pub fn disk(&self, id: &str) -> Option<&DiskDefinition> {
        self.disks.iter().find(|d| d.disk_id == id)
    }
}
