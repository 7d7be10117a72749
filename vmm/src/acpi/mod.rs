//! ACPI tables, written below 1 MiB where both boot paths point the kernel
//! (PVH start info `rsdp_paddr`, boot_params `acpi_rsdp_addr`).
//!
//! The platform is hardware-reduced: no PM1 blocks, no SCI, sleep and reset
//! through the registers of `devices::acpi_power`. Debian's cloud kernel
//! needs these tables: it has no MP-table support and finds PCI (and so
//! virtio) only through ACPI.

mod dsdt;
pub mod loader;

use crate::layout::{ACPI_TABLES_ADDR, ACPI_TABLES_END, IOAPIC_ADDR, LAPIC_ADDR, PCI_ECAM_START};
use crate::memory::GuestMemory;
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::mcfg::MCFG;
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::Aml;
use devices::acpi_power::{
    ACPI_PM_BASE, RESET_OFFSET, RESET_VALUE, SLEEP_CONTROL_OFFSET, SLEEP_STATUS_OFFSET,
};
use vm_memory::{Bytes, GuestAddress};

const OEM_ID: [u8; 6] = *b"OVFRUN";

fn io_reg(offset: u64) -> GAS {
    GAS::new(
        AddressSpace::SystemIo,
        8,
        0,
        AccessSize::ByteAccess,
        ACPI_PM_BASE + offset,
    )
}

/// The MADT: a local APIC per vCPU, the IOAPIC, and the ISA overrides
/// (timer on pin 2, SCI-less platform so nothing else).
fn madt(vcpus: u8) -> Sdt {
    let mut t = Sdt::new(*b"APIC", 44, 5, OEM_ID, *b"OVFRMADT", 1);
    t.write_u32(36, LAPIC_ADDR as u32);
    t.write_u32(40, 1); // PCAT_COMPAT: there are 8259s to mask
    for id in 0..vcpus {
        t.append_slice(&[0, 8, id, id, 1, 0, 0, 0]);
    }
    let mut ioapic = vec![1, 12, 0, 0];
    ioapic.extend_from_slice(&(IOAPIC_ADDR as u32).to_le_bytes());
    ioapic.extend_from_slice(&0u32.to_le_bytes());
    t.append_slice(&ioapic);
    // Interrupt source override: ISA IRQ 0 -> GSI 2, flags conform.
    t.append_slice(&[2, 10, 0, 0, 2, 0, 0, 0, 0, 0]);
    // Local APIC NMI: all processors, LINT1.
    t.append_slice(&[4, 6, 0xff, 0, 0, 1]);
    t.update_checksum();
    t
}

fn fadt(dsdt_addr: u64) -> Vec<u8> {
    let mut b = FADTBuilder::new(OEM_ID, *b"OVFRFACP", 1)
        .flag(Flags::HwReducedAcpi)
        .flag(Flags::ResetRegSup)
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton)
        .dsdt_64(dsdt_addr);
    b.sleep_control_reg = io_reg(SLEEP_CONTROL_OFFSET);
    b.sleep_status_reg = io_reg(SLEEP_STATUS_OFFSET);
    b.reset_reg = io_reg(RESET_OFFSET);
    b.reset_value = RESET_VALUE;
    b.hypervisor_vendor_identity = u64::from_le_bytes(*b"OVFRUNVM").into();
    let mut out = Vec::new();
    b.finalize().to_aml_bytes(&mut out);
    out
}

fn mcfg() -> Vec<u8> {
    let mut m = MCFG::new(OEM_ID, *b"OVFRMCFG", 1);
    m.add_ecam(PCI_ECAM_START, 0, 0, 0);
    let mut out = Vec::new();
    m.to_aml_bytes(&mut out);
    out
}

/// Every table as (signature, bytes), in placement order; the RSDP last
/// since it needs the XSDT address. `vmgenid`: describe the VM generation
/// ID device (direct boots).
pub fn build_tables(vcpus: u8, base: u64, vmgenid: bool) -> Vec<(u64, Vec<u8>)> {
    let mut placed = Vec::new();
    // RSDP first (at `base`, 16-byte aligned, where scanners look).
    let rsdp_len = Rsdp::len() as u64;
    let mut next = base + ((rsdp_len + 15) & !15);
    let mut put = |bytes: Vec<u8>, placed: &mut Vec<(u64, Vec<u8>)>| {
        let at = next;
        next = (next + bytes.len() as u64 + 15) & !15;
        placed.push((at, bytes));
        at
    };
    let dsdt = dsdt::build(vmgenid);
    let dsdt_addr = put(dsdt.as_slice().to_vec(), &mut placed);
    let fadt_addr = put(fadt(dsdt_addr), &mut placed);
    let madt_addr = put(madt(vcpus).as_slice().to_vec(), &mut placed);
    let mcfg_addr = put(mcfg(), &mut placed);
    let mut xsdt = XSDT::new(OEM_ID, *b"OVFRXSDT", 1);
    for a in [fadt_addr, madt_addr, mcfg_addr] {
        xsdt.add_entry(a);
    }
    let mut xb = Vec::new();
    xsdt.to_aml_bytes(&mut xb);
    let xsdt_addr = put(xb, &mut placed);
    let mut rb = Vec::new();
    Rsdp::new(OEM_ID, xsdt_addr).to_aml_bytes(&mut rb);
    placed.insert(0, (base, rb));
    placed
}

/// Write the tables (with the VM generation ID device) into guest memory;
/// returns the RSDP address.
pub fn write(mem: &GuestMemory, vcpus: u8) -> Result<u64, String> {
    let tables = build_tables(vcpus, ACPI_TABLES_ADDR, true);
    for (addr, bytes) in &tables {
        if addr + bytes.len() as u64 > ACPI_TABLES_END {
            return Err(format!(
                "ACPI tables for {vcpus} vCPUs do not fit below the SMBIOS area (0xf0000)"
            ));
        }
        mem.write_slice(bytes, GuestAddress(*addr))
            .map_err(|e| format!("writing ACPI table at {addr:#x}: {e}"))?;
    }
    Ok(ACPI_TABLES_ADDR)
}

#[cfg(test)]
mod tests;
