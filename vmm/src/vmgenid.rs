//! The ACPI VM Generation ID (Microsoft's "Virtual Machine Generation ID"
//! specification, as QEMU's `vmgenid` device and Linux's
//! `drivers/virt/vmgenid.c` implement it): a 128-bit value in guest memory
//! that changes whenever the VM may have been duplicated. A guest that
//! sees it change after an ACPI notification reseeds its random number
//! generator (Linux: `add_vmfork_randomness`), so clones of one snapshot do
//! not produce the same "random" numbers.
//!
//! The DSDT's `VGEN` device (`_HID "VMGENCTR"`, the ID Linux matches)
//! names the value's guest address in `ADDR` (a package of the low and high
//! 32 bits). The value lives in the reserved area below 1 MiB (`layout.rs`,
//! [`VMGENID_ADDR`]), never given to the guest as RAM. Each direct boot
//! gets a new value; a restore writes a new one before any vCPU runs and
//! then raises [`VMGENID_IRQ`]: the generic event device's `_EVT` turns it
//! into `Notify(VGEN, 0x80)`. Firmware boots have no `VGEN` (SeaBIOS
//! builds its own tables).

use crate::layout::VMGENID_ADDR;
pub use crate::layout::VMGENID_IRQ;
use crate::memory::GuestMemory;
use acpi_tables::aml::{Device, Name, Package};
use acpi_tables::Aml;
use std::io::Read;
use vm_memory::{Bytes, GuestAddress};

/// Bytes of the generation ID.
pub const ID_LEN: usize = 16;

/// A fresh random generation ID.
pub fn new_id() -> std::io::Result<[u8; ID_LEN]> {
    // /dev/urandom rather than getrandom(2): a rebuilt VM (after a guest
    // reset) comes here on the filtered VM loop thread, which may open and
    // read files.
    let mut id = [0u8; ID_LEN];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut id)?;
    Ok(id)
}

/// Put `id` where the guest's driver reads it.
pub fn write_id(mem: &GuestMemory, id: &[u8; ID_LEN]) -> Result<(), vm_memory::GuestMemoryError> {
    mem.write_slice(id, GuestAddress(VMGENID_ADDR))
}

/// The generation ID in guest memory (tests, logs).
pub fn read_id(mem: &GuestMemory) -> Result<[u8; ID_LEN], vm_memory::GuestMemoryError> {
    let mut id = [0u8; ID_LEN];
    mem.read_slice(&mut id, GuestAddress(VMGENID_ADDR))?;
    Ok(id)
}

/// The `VGEN` device for the DSDT's `\_SB` scope.
pub fn aml() -> Vec<u8> {
    let hid: &'static str = "VMGENCTR";
    let cid: &'static str = "VM_Gen_Counter";
    let low = (VMGENID_ADDR & 0xffff_ffff) as u32;
    let high = (VMGENID_ADDR >> 32) as u32;
    let addr = Package::new(vec![&low, &high]);
    let n_hid = Name::new("_HID".into(), &hid);
    let n_cid = Name::new("_CID".into(), &cid);
    let n_ddn = Name::new("_DDN".into(), &cid);
    let n_addr = Name::new("ADDR".into(), &addr);
    let mut out = Vec::new();
    Device::new("VGEN".into(), vec![&n_hid, &n_cid, &n_ddn, &n_addr]).to_aml_bytes(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fresh_and_land_where_addr_says() {
        let a = new_id().unwrap();
        let b = new_id().unwrap();
        assert_ne!(a, b, "two clones must not share a generation ID");
        let mem = crate::memory::create(64).unwrap();
        write_id(&mem, &a).unwrap();
        assert_eq!(read_id(&mem).unwrap(), a);
        let aml = aml();
        assert!(aml.windows(8).any(|w| w == b"VMGENCTR"));
        // ADDR's package holds the address's low half as a DWord.
        let low = (VMGENID_ADDR as u32).to_le_bytes();
        assert!(
            aml.windows(5).any(|w| w[0] == 0x0c && w[1..] == low),
            "{aml:02x?}"
        );
    }
}
