//! SMBIOS (DMI) tables: what the guest reads as `/sys/class/dmi/id/*` and
//! `dmidecode` prints. Every PC hypervisor provides them, and guests rely on
//! them: cloud-init's OVF datasource reads `system-product-name` and fails
//! without it, systemd and udev read the vendor and chassis, and the system
//! UUID identifies the machine.
//!
//! From DMTF DSP0134 (SMBIOS 3.2): a 64-bit entry point ("_SM3_", section
//! 5.2.2) that x86 Linux finds by scanning 0xF0000-0xFFFFF at 16-byte steps
//! (no EFI here), pointing at a structure table of BIOS Information (type
//! 0, 7.1), System Information (type 1, 7.2), System Enclosure (type 3,
//! 7.4) and End-of-Table (type 127, 7.45). Each structure is its formatted
//! area followed by its strings (NUL-terminated, the set ended by one more
//! NUL; a structure without strings ends with two NULs).
//!
//! Not provided: processor, memory device and slot structures (types 4,
//! 16, 17, 9); guests take CPUs and memory from ACPI and the e820 map.

use crate::layout::{SMBIOS_ADDR, SMBIOS_END};
use crate::memory::GuestMemory;
use vm_memory::{Bytes, GuestAddress, GuestMemoryError};

/// The machine's identity as the guest sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmbiosInfo {
    /// System UUID (type 1), in the RFC 4122 byte order of its text form;
    /// written with SMBIOS 2.6+'s little-endian first three fields.
    pub uuid: [u8; 16],
    /// System serial number (type 1 and the enclosure's).
    pub serial: String,
}

const VENDOR: &str = "ovf-run";
const PRODUCT: &str = "ovf-run";
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The entry point takes 24 bytes; the table follows at the next 32.
const TABLE_OFFSET: u64 = 0x20;

/// One structure: formatted area (header included) and its strings, which
/// the formatted area refers to by number (1 = the first; 0 = none).
fn structure(kind: u8, handle: u16, body: &[u8], strings: &[&str]) -> Vec<u8> {
    let mut s = vec![kind, (4 + body.len()) as u8];
    s.extend_from_slice(&handle.to_le_bytes());
    s.extend_from_slice(body);
    for text in strings {
        // Plain ASCII without NUL; anything else becomes '?'.
        s.extend(
            text.bytes()
                .map(|b| if (0x20..0x7f).contains(&b) { b } else { b'?' }),
        );
        s.push(0);
    }
    if strings.is_empty() {
        s.push(0);
    }
    s.push(0);
    s
}

/// The serial number as a string list entry, if there is one.
fn serial(info: &SmbiosInfo) -> Option<&str> {
    Some(info.serial.as_str()).filter(|s| !s.is_empty())
}

fn bios_information() -> Vec<u8> {
    let mut b = vec![1, 2]; // vendor, version
    b.extend_from_slice(&0xf000u16.to_le_bytes()); // starting segment
    b.push(0); // release date: none
    b.push(0); // ROM size: 64 KiB
    b.extend_from_slice(&(1u64 << 3).to_le_bytes()); // characteristics not supported
    b.push(0); // extension byte 1
    b.push(1 << 4); // extension byte 2: this is a virtual machine
    b.extend_from_slice(&[0, 0, 0xff, 0xff]); // BIOS 0.0, no embedded controller
    structure(0, 0, &b, &[VENDOR, VERSION])
}

/// SMBIOS 2.6+ stores the UUID's first three fields little-endian.
fn uuid_wire(uuid: &[u8; 16]) -> [u8; 16] {
    let mut w = *uuid;
    w[0..4].reverse();
    w[4..6].reverse();
    w[6..8].reverse();
    w
}

fn system_information(info: &SmbiosInfo) -> Vec<u8> {
    let mut strings = vec![VENDOR, PRODUCT, VERSION];
    strings.extend(serial(info));
    // manufacturer, product name, version, serial number
    let mut b = vec![1, 2, 3, if serial(info).is_some() { 4 } else { 0 }];
    b.extend_from_slice(&uuid_wire(&info.uuid));
    b.push(0x06); // wake-up type: power switch
    b.push(0); // SKU: none
    b.push(0); // family: none
    structure(1, 1, &b, &strings)
}

fn system_enclosure(info: &SmbiosInfo) -> Vec<u8> {
    let mut strings = vec![VENDOR];
    strings.extend(serial(info));
    let b = [
        1,                                          // manufacturer
        0x01,                                       // type: other
        0,                                          // version: none
        if serial(info).is_some() { 2 } else { 0 }, // serial number
        0,                                          // asset tag: none
        0x03,                                       // boot-up state: safe
        0x03,                                       // power supply state: safe
        0x03,                                       // thermal state: safe
        0x02,                                       // security status: unknown
    ];
    structure(3, 3, &b, &strings)
}

/// The structure table and the entry point that points at it, for an entry
/// point at guest address `base` (the table follows at `base + 0x20`).
pub fn build(info: &SmbiosInfo, base: u64) -> (Vec<u8>, Vec<u8>) {
    let mut table = Vec::new();
    table.extend(bios_information());
    table.extend(system_information(info));
    table.extend(system_enclosure(info));
    table.extend(structure(127, 0x7f, &[], &[]));
    let mut ep = Vec::with_capacity(24);
    ep.extend_from_slice(b"_SM3_");
    ep.push(0); // checksum, below
    ep.push(24); // entry point length
    ep.extend_from_slice(&[3, 2, 0]); // SMBIOS 3.2, docrev 0
    ep.push(1); // entry point revision: 3.0 format
    ep.push(0);
    ep.extend_from_slice(&(table.len() as u32).to_le_bytes()); // maximum size
    ep.extend_from_slice(&(base + TABLE_OFFSET).to_le_bytes());
    let sum = ep.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    ep[5] = 0u8.wrapping_sub(sum);
    (ep, table)
}

/// Write the entry point at `layout::SMBIOS_ADDR` and the table after it.
pub fn write(mem: &GuestMemory, info: &SmbiosInfo) -> Result<(), GuestMemoryError> {
    let (ep, table) = build(info, SMBIOS_ADDR);
    debug_assert!(SMBIOS_ADDR + TABLE_OFFSET + table.len() as u64 <= SMBIOS_END);
    mem.write_slice(&ep, GuestAddress(SMBIOS_ADDR))?;
    mem.write_slice(&table, GuestAddress(SMBIOS_ADDR + TABLE_OFFSET))
}

#[cfg(test)]
mod tests;
