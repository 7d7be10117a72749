//! The `inspect` report: everything a user wants to know before running a
//! package, as one serialisable value. Its JSON form is documented in
//! `docs/inspect-json.md` and versioned by `schema`.

use crate::machine::{machine_spec, MachineSpec};
use crate::model::{Configuration, Content, Ignored, NetworkDefinition, OvfVersion, Property};
use crate::package::{Package, PackageKind};
use crate::properties::{
    self, Assignment, MissingProperty, PropertyError, Resolution, ValueSource,
};
use serde::Serialize;

pub const SCHEMA: &str = "ovf-run.inspect/1";

#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    pub schema: &'static str,
    pub package: PackageInfo,
    pub products: Vec<ProductInfo>,
    pub eula: EulaInfo,
    pub configurations: Vec<Configuration>,
    pub default_configuration: Option<String>,
    pub networks: Vec<NetworkDefinition>,
    pub disks: Vec<DiskInfo>,
    pub systems: Vec<SystemInfo>,
    pub properties: Vec<PropertyInfo>,
    /// Properties that need a value before the package can run (`--prop`).
    pub missing_properties: Vec<MissingProperty>,
    pub ignored: Vec<Ignored>,
    pub warnings: Vec<String>,
    /// What would boot: found inside the first system's boot disk
    /// (filled by the caller, which has the boot discovery).
    pub boot: Option<BootInfo>,
    /// Why nothing bootable was found, when `boot` is null.
    pub boot_error: Option<String>,
    /// How `--firmware auto` would start it: "direct" (a Linux kernel was
    /// found), "bios" (the disk's own boot loader through SeaBIOS), "none"
    /// (no kernel found and the package names EFI firmware, which SeaBIOS
    /// cannot stand in for: a run refuses it), or null when there is no
    /// disk to boot from.
    pub firmware_auto: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BootInfo {
    pub system_id: String,
    pub kernel: String,
    pub initrd: Option<String>,
    /// The entry's own command line.
    pub entry_cmdline: String,
    /// What ovf-run passes (console on ttyS0, --append/--cmdline applied).
    pub cmdline: String,
    pub entry: String,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PackageInfo {
    pub path: String,
    pub kind: PackageKind,
    /// How an OVA's members are stored: `tar`, `tar-gzip`, `tar-xz`, `zip`.
    pub container: Option<crate::container::Container>,
    pub descriptor: String,
    pub ovf_version: OvfVersion,
    pub files: Vec<FileInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    pub id: String,
    pub href: String,
    pub declared_size: Option<u64>,
    /// Size found in the package; `None` when the file is missing.
    pub size: Option<u64>,
    pub compression: Option<String>,
    pub chunked: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProductInfo {
    /// The VirtualSystem or collection the ProductSection belongs to.
    pub owner: String,
    pub product: Option<String>,
    pub vendor: Option<String>,
    pub version: Option<String>,
    pub full_version: Option<String>,
    pub product_url: Option<String>,
    pub vendor_url: Option<String>,
    pub app_url: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EulaInfo {
    pub present: bool,
    pub count: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiskInfo {
    pub disk_id: String,
    pub file_ref: Option<String>,
    pub href: Option<String>,
    pub capacity_bytes: u64,
    pub format: Option<String>,
    /// Bytes the image takes in the package.
    pub file_size: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SystemInfo {
    pub id: String,
    pub name: Option<String>,
    pub operating_system: Option<String>,
    pub system_types: Vec<String>,
    /// The mapped hardware for the chosen configuration, or why it cannot be mapped.
    pub hardware: Option<MachineSpec>,
    pub hardware_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PropertyInfo {
    pub owner: String,
    #[serde(flatten)]
    pub property: Property,
    /// The value the guest gets (with --prop applied; `value` is the
    /// package's default).
    pub final_value: String,
    pub source: ValueSource,
}

/// The report with the package's own property values.
pub fn inspect(pkg: &Package, configuration: Option<&str>) -> InspectReport {
    let resolution = properties::resolve(&pkg.envelope, configuration, &[])
        .expect("no assignments, nothing to refuse");
    report(pkg, configuration, &resolution)
}

/// The report with `assignments` (`--prop`) applied: final values, and
/// disk capacities given as `${key}` from them.
pub fn inspect_with_properties(
    pkg: &Package,
    configuration: Option<&str>,
    assignments: &[Assignment],
) -> Result<InspectReport, PropertyError> {
    let resolution = properties::resolve(&pkg.envelope, configuration, assignments)?;
    Ok(report(pkg, configuration, &resolution))
}

fn report(pkg: &Package, configuration: Option<&str>, resolution: &Resolution) -> InspectReport {
    // A capacity that cannot be applied stays as parsed (the run says why).
    let applied = properties::apply_to_envelope(&pkg.envelope, resolution).ok();
    let env = applied.as_ref().unwrap_or(&pkg.envelope);
    let mut warnings = pkg.warnings.clone();
    warnings.extend(env.warnings.iter().cloned());
    warnings.extend(resolution.warnings.iter().cloned());
    let files = env
        .references
        .iter()
        .map(|r| {
            let located = pkg.locate(&r.id);
            if let Err(e) = &located {
                warnings.push(e.to_string());
            }
            FileInfo {
                id: r.id.clone(),
                href: r.href.clone(),
                declared_size: r.size,
                size: located.as_ref().ok().map(|l| l.len()),
                compression: r.compression.clone(),
                chunked: r.chunk_size.is_some(),
            }
        })
        .collect::<Vec<_>>();
    let disks = env
        .disks
        .iter()
        .map(|d| {
            let file = d
                .file_ref
                .as_ref()
                .and_then(|f| files.iter().find(|x| &x.id == f));
            DiskInfo {
                disk_id: d.disk_id.clone(),
                file_ref: d.file_ref.clone(),
                href: file.map(|f| f.href.clone()),
                capacity_bytes: d.capacity_bytes,
                format: d.format.clone(),
                file_size: file.and_then(|f| f.size),
            }
        })
        .collect();
    let mut products = Vec::new();
    let mut properties = Vec::new();
    let mut systems = Vec::new();
    if let Some(content) = &env.content {
        collect(
            content,
            env,
            configuration,
            &mut products,
            &mut properties,
            &mut systems,
        );
    }
    // all_properties and collect walk the same order.
    for (info, fin) in properties.iter_mut().zip(&resolution.properties) {
        debug_assert_eq!(info.property.full_key, fin.full_key);
        info.final_value = fin.value.clone();
        info.source = fin.source;
    }
    InspectReport {
        schema: SCHEMA,
        package: PackageInfo {
            path: pkg.path.display().to_string(),
            kind: pkg.kind,
            container: pkg.container,
            descriptor: pkg.descriptor_name.clone(),
            ovf_version: env.ovf_version,
            files,
        },
        products,
        eula: {
            let count = env
                .content
                .as_ref()
                .map(|c| c.all_eulas().len())
                .unwrap_or(0);
            EulaInfo {
                present: count > 0,
                count,
            }
        },
        configurations: env.configurations.clone(),
        default_configuration: env.default_configuration().map(|c| c.id.clone()),
        networks: env.networks.clone(),
        disks,
        systems,
        properties,
        missing_properties: resolution.missing.clone(),
        ignored: env.ignored.clone(),
        warnings,
        boot: None,
        boot_error: None,
        firmware_auto: None,
    }
}

fn collect(
    content: &Content,
    env: &crate::model::Envelope,
    configuration: Option<&str>,
    products: &mut Vec<ProductInfo>,
    properties: &mut Vec<PropertyInfo>,
    systems: &mut Vec<SystemInfo>,
) {
    let owner = content.id().to_string();
    for p in content.products() {
        products.push(ProductInfo {
            owner: owner.clone(),
            product: p.product.clone(),
            vendor: p.vendor.clone(),
            version: p.version.clone(),
            full_version: p.full_version.clone(),
            product_url: p.product_url.clone(),
            vendor_url: p.vendor_url.clone(),
            app_url: p.app_url.clone(),
        });
        properties.extend(p.properties.iter().map(|prop| PropertyInfo {
            owner: owner.clone(),
            property: prop.clone(),
            final_value: String::new(),
            source: ValueSource::Empty,
        }));
    }
    match content {
        Content::VirtualSystem(vs) => {
            let (hardware, hardware_error) = match machine_spec(env, Some(&vs.id), configuration) {
                Ok(spec) => (Some(spec), None),
                Err(e) => (None, Some(e.to_string())),
            };
            systems.push(SystemInfo {
                id: vs.id.clone(),
                name: vs.name.clone(),
                operating_system: vs
                    .operating_system
                    .as_ref()
                    .and_then(|o| o.description.clone().or(o.os_type.clone())),
                system_types: vs
                    .hardware
                    .first()
                    .map(|h| h.system_types.clone())
                    .unwrap_or_default(),
                hardware,
                hardware_error,
            });
        }
        Content::VirtualSystemCollection(c) => {
            for m in &c.members {
                collect(m, env, configuration, products, properties, systems);
            }
        }
    }
}
