//! Attaching the PCI host bridge and the virtio devices (disks, NICs,
//! entropy, CD-ROMs, in that order): one slot and one 64 KiB BAR per device,
//! ioeventfds on the queue notify addresses. A BAR the guest moves (firmware
//! assigns them all itself) takes its MMIO mapping and ioeventfds along
//! ([`Remapper`]).

use crate::interrupts::KvmInterrupts;
use crate::layout::{PCI_ECAM_SIZE, PCI_ECAM_START, PCI_MMIO_SIZE, PCI_MMIO_START};
use crate::memory::GuestMemory;
use crate::{VmConfig, VmmError};
use devices::bus::Bus;
use devices::interrupt::MsiRouter;
use devices::pci::root::{PciConfigIo, PciConfigMmio, PciRoot, CONFIG_IO_BASE, CONFIG_IO_LEN};
use devices::pci::{BarMapper, BarMove, HostBridge};
use devices::virtio::block::VirtioBlock;
use devices::virtio::net::{format_mac, VirtioNet};
use devices::virtio::pci::{VirtioPciDevice, BAR_SIZE};
use devices::virtio::rng::VirtioRng;
use devices::virtio::scsi::VirtioScsi;
use devices::virtio::VirtioDevice;
use kvm_ioctls::{IoEventAddress, NoDatamatch, VmFd};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

fn err(what: impl Into<String>, e: impl ToString) -> VmmError {
    VmmError::Device {
        what: what.into(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// A virtio device on the bus, as a snapshot names it.
pub struct AttachedVirtio {
    /// "pci:00:SS.0" (its slot).
    pub id: String,
    /// For messages: "disk 0 (…)", "virtio-rng", …
    pub name: String,
    pub dev: Arc<Mutex<VirtioPciDevice>>,
}

/// The format of a virtio device's saved state in a snapshot.
pub const VIRTIO_STATE_VERSION: u16 = 1;

/// Attach the bridge and the devices; with `restore`, each device takes
/// its saved state back (and is left paused: see
/// [`VirtioPciDevice::restore`]).
pub fn attach(
    config: &VmConfig,
    mem: &GuestMemory,
    vm: &Arc<VmFd>,
    irqs: &Arc<KvmInterrupts>,
    pio: &Arc<Bus>,
    mmio: &Arc<Bus>,
    restore: Option<&snapshot::Snapshot>,
) -> Result<Vec<AttachedVirtio>, VmmError> {
    let mut root = PciRoot::new();
    root.add(Arc::new(Mutex::new(HostBridge::new())));
    let mut devs: Vec<(String, Box<dyn VirtioDevice>)> = Vec::new();
    for (i, d) in config.disks.iter().enumerate() {
        devs.push((
            format!("disk {i} ({})", d.id),
            Box::new(VirtioBlock::new(
                d.source.clone(),
                d.read_only,
                d.id.clone(),
            )),
        ));
    }
    for (i, n) in config.nics.iter().enumerate() {
        devs.push((
            format!("NIC {i} ({}, {})", format_mac(&n.mac), n.backend.describe()),
            Box::new(VirtioNet::new(n.mac, n.backend.lend())),
        ));
    }
    if config.entropy {
        devs.push(("virtio-rng".into(), Box::new(VirtioRng::new())));
    }
    for (i, c) in config.cdroms.iter().enumerate() {
        devs.push((
            format!("CD-ROM {i} ({})", c.serial),
            Box::new(VirtioScsi::new(c.source.clone(), c.serial.clone())),
        ));
    }
    let router: Arc<dyn MsiRouter> = irqs.clone();
    let mut moved = HashMap::new();
    let mut attached = Vec::new();
    let mut bar = PCI_MMIO_START;
    for (name, dev) in devs {
        if bar + BAR_SIZE > PCI_MMIO_START + PCI_MMIO_SIZE {
            return Err(err(name, "no room left in the PCI memory window"));
        }
        let t = VirtioPciDevice::new(dev, mem.clone(), router.clone(), bar)
            .map_err(|e| err(&name, e))?;
        for (addr, evt) in t.notify_events() {
            vm.register_ioevent(evt, &IoEventAddress::Mmio(addr), NoDatamatch)
                .map_err(|e| err(&name, format!("ioeventfd at {addr:#x}: {e}")))?;
        }
        let t = Arc::new(Mutex::new(t));
        let slot = root
            .add(t.clone())
            .ok_or_else(|| err(&name, "all 32 PCI slots are taken"))?;
        mmio.insert(t.clone(), bar, BAR_SIZE)
            .map_err(|e| err(&name, e))?;
        let id = format!("pci:00:{slot:02x}.0");
        if let Some(snap) = restore {
            restore_device(snap, &id, &name, vm, mmio, &t)?;
        }
        moved.insert(slot, (name.clone(), Arc::downgrade(&t)));
        attached.push(AttachedVirtio { id, name, dev: t });
        bar += BAR_SIZE;
    }
    root.set_bar_mapper(Arc::new(Remapper {
        vm: Arc::downgrade(vm),
        mmio: Arc::downgrade(mmio),
        devices: moved,
    }));
    let root = Arc::new(root);
    pio.insert(
        Arc::new(Mutex::new(PciConfigIo::new(root.clone()))),
        CONFIG_IO_BASE,
        CONFIG_IO_LEN,
    )
    .map_err(|e| err("PCI config ports", e))?;
    mmio.insert(
        Arc::new(Mutex::new(PciConfigMmio::new(root))),
        PCI_ECAM_START,
        PCI_ECAM_SIZE,
    )
    .map_err(|e| err("PCI ECAM", e))?;
    Ok(attached)
}

/// Give device `id` its saved state and move its BAR where it was.
fn restore_device(
    snap: &snapshot::Snapshot,
    id: &str,
    name: &str,
    vm: &VmFd,
    mmio: &Bus,
    t: &Arc<Mutex<VirtioPciDevice>>,
) -> Result<(), VmmError> {
    let bad = |reason: String| {
        VmmError::Restore(crate::RestoreError::BadDevice {
            id: format!("{id} ({name})"),
            version: VIRTIO_STATE_VERSION,
            reason,
        })
    };
    let saved = snap
        .devices
        .iter()
        .find(|d| d.id == id)
        .ok_or_else(|| bad("the snapshot has no state for it".into()))?;
    if saved.version != VIRTIO_STATE_VERSION {
        return Err(bad(format!(
            "format {} is not {VIRTIO_STATE_VERSION}",
            saved.version
        )));
    }
    let state: devices::virtio::pci::VirtioPciState =
        postcard::from_bytes(&saved.data).map_err(|e| bad(e.to_string()))?;
    let mv = t
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .restore(&state)
        .map_err(|e| bad(e.to_string()))?;
    if let Some(mv) = mv {
        remap(vm, mmio, t, mv).map_err(bad)?;
    }
    Ok(())
}

/// Pause every device and record its state (for a snapshot).
pub fn save_all(devs: &[AttachedVirtio]) -> Result<Vec<snapshot::DeviceState>, String> {
    let mut out = Vec::new();
    for a in devs {
        let state = a
            .dev
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .save()
            .map_err(|e| format!("{}: {e}", a.name))?;
        out.push(snapshot::DeviceState {
            id: a.id.clone(),
            version: VIRTIO_STATE_VERSION,
            data: postcard::to_stdvec(&state).expect("a device state always encodes"),
        });
    }
    Ok(out)
}

/// Let every device serve again (after [`save_all`] or a restore).
pub fn resume_all(devs: &[AttachedVirtio]) {
    for a in devs {
        if let Err(e) = a.dev.lock().unwrap_or_else(|e| e.into_inner()).resume() {
            tracing::warn!("{}: cannot resume: {e}", a.name);
        }
    }
}

/// Moves a virtio device's BAR: the MMIO bus entry and the queue notify
/// ioeventfds. Holds weak references only: the bus owns the PCI root,
/// which owns this.
struct Remapper {
    vm: Weak<VmFd>,
    mmio: Weak<Bus>,
    devices: HashMap<u8, (String, Weak<Mutex<VirtioPciDevice>>)>,
}

impl BarMapper for Remapper {
    fn move_bar(&self, slot: u8, mv: BarMove) {
        let (Some(vm), Some(mmio), Some((name, dev))) = (
            self.vm.upgrade(),
            self.mmio.upgrade(),
            self.devices.get(&slot),
        ) else {
            return;
        };
        let Some(dev) = dev.upgrade() else { return };
        if let Err(e) = remap(&vm, &mmio, &dev, mv) {
            tracing::warn!(
                "{name}: the guest moved its BAR from {:x?} to {:x?}, which cannot be mapped ({e}); the device stops answering",
                mv.from,
                mv.to
            );
        } else {
            tracing::debug!("{name}: BAR decodes at {:x?} (was {:x?})", mv.to, mv.from);
        }
    }
}

fn remap(
    vm: &VmFd,
    mmio: &Bus,
    dev: &Arc<Mutex<VirtioPciDevice>>,
    mv: BarMove,
) -> Result<(), String> {
    if let Some(from) = mv.from {
        let d = dev.lock().unwrap_or_else(|e| e.into_inner());
        for (addr, evt) in d.notify_events_at(from) {
            vm.unregister_ioevent(evt, &IoEventAddress::Mmio(addr), NoDatamatch)
                .map_err(|e| format!("ioeventfd at {addr:#x}: {e}"))?;
        }
        drop(d);
        mmio.remove(from);
    }
    if let Some(to) = mv.to {
        mmio.insert(dev.clone(), to, mv.size)
            .map_err(|e| e.to_string())?;
        let d = dev.lock().unwrap_or_else(|e| e.into_inner());
        for (addr, evt) in d.notify_events_at(to) {
            vm.register_ioevent(evt, &IoEventAddress::Mmio(addr), NoDatamatch)
                .map_err(|e| format!("ioeventfd at {addr:#x}: {e}"))?;
        }
    }
    Ok(())
}
