//! The pure part of launching: the OVF machine plus the user's overrides
//! and the host's limits → the machine to build. No files, no processes:
//! every limit on vCPUs, memory, devices and networking is decided here and
//! unit-tested.

use crate::host::HostLimits;
use crate::net::{self, NetOptions, NicPlan};
use devices::net_backend::publish::Publish;
use ovf_loader::MachineSpec;

/// The monitor's bounds (see `vmm`): vCPUs, and PCI slots for devices
/// (32 slots, one for the host bridge, one for the entropy device).
pub const MAX_VCPUS: u32 = 254;
pub const MAX_PCI_DEVICES: usize = 30;
/// Below this a Linux appliance cannot boot; refused as a mistake.
pub const MIN_MEMORY_MIB: u64 = 64;

/// What the user asked to change.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub cpus: Option<u32>,
    pub memory_mib: Option<u64>,
}

/// The machine to build, before any file is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachinePlan {
    pub vcpus: u8,
    pub memory_mib: u64,
    /// Disks (the first boots) and the package's CD-ROM images, counted
    /// as the descriptor lists them.
    pub disks: usize,
    pub cdroms: usize,
    pub nics: Vec<NicPlan>,
    /// Published ports (host port 0: chosen at start).
    pub publish: Vec<Publish>,
    /// Things the user should know (clamped values, unconnected NICs).
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{what} asks for {asked} vCPUs and this host has {host}; pass --cpus {host} or fewer")]
    TooManyCpus {
        what: &'static str,
        asked: u32,
        host: u32,
    },
    #[error("--cpus 0: a VM needs at least one vCPU")]
    NoCpus,
    #[error("{what} asks for {asked} MiB of memory and this host has {host} MiB; pass --memory with less (in MiB)")]
    TooMuchMemory {
        what: &'static str,
        asked: u64,
        host: u64,
    },
    #[error("{what} asks for {asked} MiB of memory; at least {MIN_MEMORY_MIB} MiB are needed (--memory, in MiB)")]
    TooLittleMemory { what: &'static str, asked: u64 },
    #[error("the virtual system has no disk to boot from")]
    NoDisk,
    #[error("the virtual system has {0} disks, CD-ROMs and NICs; at most {MAX_PCI_DEVICES} fit on the VM's PCI bus")]
    TooManyDevices(usize),
    #[error(transparent)]
    Net(#[from] net::NetError),
}

/// Map `spec` with `overrides` onto a machine this host can run. An
/// explicit `--cpus`/`--memory` above the host's is refused; the
/// descriptor's vCPUs are clamped to the host's with a note, its memory
/// above the host's total is refused (the guest would be killed later).
pub fn plan_machine(
    spec: &MachineSpec,
    overrides: &Overrides,
    net: &NetOptions,
    instance: &str,
    host: HostLimits,
) -> Result<MachinePlan, PlanError> {
    let mut notes = Vec::new();
    let vcpus = match overrides.cpus {
        Some(0) => return Err(PlanError::NoCpus),
        Some(n) if n > host.cpus.min(MAX_VCPUS) => {
            return Err(PlanError::TooManyCpus {
                what: "--cpus",
                asked: n,
                host: host.cpus.min(MAX_VCPUS),
            })
        }
        Some(n) => n,
        None => {
            let limit = host.cpus.clamp(1, MAX_VCPUS);
            let asked = spec.vcpus.max(1);
            if asked > limit {
                notes.push(format!(
                    "the appliance asks for {asked} vCPUs; this host has {limit}, so it gets {limit} (--cpus to choose)"
                ));
            }
            asked.min(limit)
        }
    };
    let (memory_mib, what) = match overrides.memory_mib {
        Some(m) => (m, "--memory"),
        None => (spec.memory_bytes.div_ceil(1 << 20), "the appliance"),
    };
    let host_mib = host.memory_bytes >> 20;
    if memory_mib > host_mib {
        return Err(PlanError::TooMuchMemory {
            what,
            asked: memory_mib,
            host: host_mib,
        });
    }
    if memory_mib < MIN_MEMORY_MIB {
        return Err(PlanError::TooLittleMemory {
            what,
            asked: memory_mib,
        });
    }
    if spec.disks.is_empty() {
        return Err(PlanError::NoDisk);
    }
    let (nics, net_notes) = net::plan(&spec.nics, net, instance)?;
    notes.extend(net_notes);
    let devices = spec.disks.len() + spec.cdroms.len() + nics.len();
    if devices > MAX_PCI_DEVICES {
        return Err(PlanError::TooManyDevices(devices));
    }
    Ok(MachinePlan {
        vcpus: vcpus as u8,
        memory_mib,
        disks: spec.disks.len(),
        cdroms: spec.cdroms.len(),
        nics,
        publish: net.publish.clone(),
        notes,
    })
}

/// The SMBIOS identity of an instance: a system UUID derived from the
/// package's descriptor and the instance name (the same package under the
/// same name keeps its UUID across runs, as a VM keeps its BIOS UUID on a
/// hypervisor; RFC 9562 version 8, name-based), and the name as serial
/// number, so a guest can tell which sandbox it is.
pub fn machine_identity(descriptor: &[u8], name: &str) -> vmm::smbios::SmbiosInfo {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"ovf-run smbios uuid\0");
    h.update(Sha256::digest(descriptor));
    h.update(name.as_bytes());
    let d = h.finalize();
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&d[..16]);
    uuid[6] = (uuid[6] & 0x0f) | 0x80; // version 8
    uuid[8] = (uuid[8] & 0x3f) | 0x80; // RFC variant
    vmm::smbios::SmbiosInfo {
        uuid,
        serial: name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::NetMode;
    use ovf_loader::machine::{DiskSpec, NicSpec};

    fn spec(vcpus: u32, mib: u64, disks: usize, nics: usize) -> MachineSpec {
        MachineSpec {
            system_id: "vm".into(),
            name: None,
            configuration: None,
            vcpus,
            memory_bytes: mib << 20,
            disks: disks_of(disks),
            cdroms: Vec::new(),
            nics: (0..nics)
                .map(|i| NicSpec {
                    network: Some(format!("net{i}")),
                    model: None,
                    mac: None,
                })
                .collect(),
            firmware: None,
            ignored: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn disks_of(disks: usize) -> Vec<DiskSpec> {
        (0..disks)
            .map(|i| DiskSpec {
                disk_id: format!("d{i}"),
                file_ref: None,
                capacity_bytes: 1 << 30,
                format: None,
                controller: None,
                address_on_parent: None,
                item_instance_id: String::new(),
            })
            .collect()
    }

    fn host(cpus: u32, mib: u64) -> HostLimits {
        HostLimits {
            cpus,
            memory_bytes: mib << 20,
        }
    }

    fn plan(s: &MachineSpec, o: Overrides, h: HostLimits) -> Result<MachinePlan, PlanError> {
        plan_machine(s, &o, &NetOptions::default(), "i1", h)
    }

    #[test]
    fn the_descriptor_is_taken_as_is_when_it_fits() {
        let p = plan(&spec(2, 1024, 1, 1), Overrides::default(), host(8, 8192)).unwrap();
        assert_eq!((p.vcpus, p.memory_mib, p.disks), (2, 1024, 1));
        assert_eq!(p.nics.len(), 1);
        assert_eq!(p.nics[0].mode, NetMode::User);
        assert!(p.notes.is_empty(), "{:?}", p.notes);
    }

    #[test]
    fn overrides_win() {
        let o = Overrides {
            cpus: Some(4),
            memory_mib: Some(768),
        };
        let p = plan(&spec(2, 1024, 1, 0), o, host(8, 8192)).unwrap();
        assert_eq!((p.vcpus, p.memory_mib), (4, 768));
    }

    #[test]
    fn descriptor_cpus_are_clamped_with_a_note_explicit_ones_refused() {
        let p = plan(&spec(16, 1024, 1, 0), Overrides::default(), host(2, 8192)).unwrap();
        assert_eq!(p.vcpus, 2);
        assert!(p.notes[0].contains("asks for 16 vCPUs"), "{:?}", p.notes);
        let o = Overrides {
            cpus: Some(3),
            ..Default::default()
        };
        let e = plan(&spec(1, 1024, 1, 0), o, host(2, 8192)).unwrap_err();
        assert!(e.to_string().contains("--cpus 2 or fewer"), "{e}");
        let o = Overrides {
            cpus: Some(0),
            ..Default::default()
        };
        assert!(matches!(
            plan(&spec(1, 1024, 1, 0), o, host(2, 8192)),
            Err(PlanError::NoCpus)
        ));
        let p = plan(&spec(0, 1024, 1, 0), Overrides::default(), host(2, 8192)).unwrap();
        assert_eq!(p.vcpus, 1, "a descriptor without a CPU count gets one");
    }

    #[test]
    fn memory_above_the_host_or_too_small_is_refused_with_the_option_to_use() {
        let e = plan(&spec(1, 16384, 1, 0), Overrides::default(), host(2, 4096)).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("16384 MiB") && m.contains("4096 MiB") && m.contains("--memory"),
            "{m}"
        );
        let o = Overrides {
            memory_mib: Some(8192),
            ..Default::default()
        };
        let e = plan(&spec(1, 1024, 1, 0), o, host(2, 4096)).unwrap_err();
        assert!(e.to_string().starts_with("--memory asks for 8192"), "{e}");
        let o = Overrides {
            memory_mib: Some(16),
            ..Default::default()
        };
        assert!(matches!(
            plan(&spec(1, 1024, 1, 0), o, host(2, 4096)),
            Err(PlanError::TooLittleMemory { .. })
        ));
    }

    #[test]
    fn disks_and_devices_are_bounded() {
        assert!(matches!(
            plan(
                &spec(1, 512, 0, 0),
                Overrides::default(),
                HostLimits::unlimited()
            ),
            Err(PlanError::NoDisk)
        ));
        assert!(matches!(
            plan(
                &spec(1, 512, 20, 11),
                Overrides::default(),
                HostLimits::unlimited()
            ),
            Err(PlanError::TooManyDevices(31))
        ));
    }

    #[test]
    fn published_ports_and_instance_macs_are_carried() {
        let net = NetOptions {
            publish: vec!["0:80".parse().unwrap()],
            ..Default::default()
        };
        let s = spec(1, 512, 1, 1);
        let a = plan_machine(
            &s,
            &Overrides::default(),
            &net,
            "a",
            HostLimits::unlimited(),
        )
        .unwrap();
        let b = plan_machine(
            &s,
            &Overrides::default(),
            &net,
            "b",
            HostLimits::unlimited(),
        )
        .unwrap();
        assert_eq!(a.publish[0].guest_port, 80);
        assert_ne!(a.nics[0].mac, b.nics[0].mac);
        assert_eq!(a.nics[0].mac, crate::net::instance_mac("a", 0));
    }

    #[test]
    fn an_instance_keeps_its_uuid_and_another_name_gets_another() {
        let a = machine_identity(b"<Envelope/>", "web1");
        assert_eq!(a, machine_identity(b"<Envelope/>", "web1"));
        assert_ne!(a.uuid, machine_identity(b"<Envelope/>", "web2").uuid);
        assert_ne!(
            a.uuid,
            machine_identity(b"<Envelope> </Envelope>", "web1").uuid
        );
        assert_eq!(a.serial, "web1");
        assert_eq!(a.uuid[6] >> 4, 8, "version 8");
        assert_eq!(a.uuid[8] >> 6, 2, "RFC variant");
    }
}
