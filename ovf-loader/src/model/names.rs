//! Namespaces and attribute lookup: the many spellings of "this is OVF".

use crate::xml::Element;
use serde::Serialize;

pub const OVF_09: &str = "http://www.vmware.com/schema/ovf/1/envelope";
pub const OVF_1: &str = "http://schemas.dmtf.org/ovf/envelope/1";
pub const OVF_1_OVIRT: &str = "http://schemas.dmtf.org/ovf/envelope/1/";
pub const OVF_2: &str = "http://schemas.dmtf.org/ovf/envelope/2";
/// A pre-1.0 DMTF draft namespace some early exporters used.
pub const OVF_DRAFT: &str = "http://schemas.dmtf.org/ovf/envelope";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OvfVersion {
    #[serde(rename = "0.9")]
    V0_9,
    #[serde(rename = "1.x")]
    V1,
    #[serde(rename = "2.x")]
    V2,
}

impl std::fmt::Display for OvfVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OvfVersion::V0_9 => "0.9",
            OvfVersion::V1 => "1.x",
            OvfVersion::V2 => "2.x",
        })
    }
}

/// The OVF version an envelope namespace stands for.
pub fn version_of_namespace(ns: &str) -> Option<OvfVersion> {
    match ns {
        OVF_09 => Some(OvfVersion::V0_9),
        OVF_1 | OVF_1_OVIRT | OVF_DRAFT => Some(OvfVersion::V1),
        OVF_2 => Some(OvfVersion::V2),
        _ => None,
    }
}

pub fn is_ovf_namespace(ns: Option<&str>) -> bool {
    ns.is_none_or(|n| version_of_namespace(n).is_some())
}

/// CIM namespaces (rasd, vssd, sasd, epasd, cim) with or without `.xsd`.
pub fn is_cim_namespace(ns: Option<&str>) -> bool {
    ns.is_some_and(|n| n.starts_with("http://schemas.dmtf.org/wbem/wscim/1/"))
}

/// An `ovf:` attribute (or an unprefixed one, which lax exporters write).
pub fn ovf_attr<'a>(element: &'a Element, name: &str) -> Option<&'a str> {
    element
        .attr_where(name, |ns| {
            ns.is_some_and(|n| version_of_namespace(n).is_some())
        })
        .or_else(|| element.attr_where(name, |ns| ns.is_none()))
}

/// `ovf:required`: the specification's default is true.
pub fn is_required(element: &Element) -> bool {
    !matches!(
        ovf_attr(element, "required").map(str::trim),
        Some("false") | Some("0")
    )
}

/// `{namespace}local` for messages.
pub fn qualified(element: &Element) -> String {
    match &element.ns {
        Some(ns) if !is_ovf_namespace(Some(ns)) => format!("{{{ns}}}{}", element.name),
        _ => element.name.clone(),
    }
}

/// Section names from DMTF and VMware that we understand well enough to
/// know that running the appliance does not need them.
pub const UNDERSTOOD_ELSEWHERE: &[(&str, &str)] = &[
    (
        "StartupSection",
        "start order of several systems; ovf-run starts one system",
    ),
    (
        "ResourceAllocationSection",
        "host resource reservations do not apply to a local VM",
    ),
    (
        "InstallSection",
        "first-boot install runs are not needed to boot the appliance",
    ),
    (
        "ScaleOutSection",
        "scale-out deployments are not supported; one instance runs",
    ),
    (
        "PlacementGroupSection",
        "placement on hosts does not apply to a local VM",
    ),
    (
        "PlacementSection",
        "placement on hosts does not apply to a local VM",
    ),
    ("EncryptionSection", "encrypted packages are not supported"),
    (
        "EnvironmentFilesSection",
        "OVF environment files are not provided",
    ),
    ("BootDeviceSection", "boot order is found inside the disk"),
    (
        "SharedDiskSection",
        "shared disks between systems are not supported",
    ),
    (
        "CompatibilitySection",
        "compatibility hints do not change the virtual hardware",
    ),
    (
        "IpAssignmentSection",
        "VMware IP assignment; the guest uses DHCP from ovf-run's network",
    ),
    (
        "StorageGroupSection",
        "VMware storage groups do not apply to a local VM",
    ),
    (
        "StorageSection",
        "VMware storage policies do not apply to a local VM",
    ),
    ("BootOrderSection", "boot order is found inside the disk"),
    (
        "vServiceDependencySection",
        "VMware vService bindings are not available outside vCenter",
    ),
    (
        "CpuCompatibilitySection",
        "CPU masks are taken from the host",
    ),
    (
        "GuestCustomizationSection",
        "vCloud guest customisation is not applied",
    ),
    (
        "NetworkConfigSection",
        "vCloud network configuration is not applied",
    ),
    (
        "NetworkConnectionSection",
        "vCloud network connections are not applied",
    ),
    ("LeaseSettingsSection", "vCloud leases do not apply"),
    ("RuntimeInfoSection", "vCloud runtime information"),
];
