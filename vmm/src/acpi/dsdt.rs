//! The DSDT: COM1, the PCI root bridge with its windows, the power button
//! and (direct boots) the VM generation ID behind a generic event device,
//! and `_S5_` for poweroff.

use crate::layout::{
    GED_IRQ, PCI_ECAM_SIZE, PCI_ECAM_START, PCI_MMIO_SIZE, PCI_MMIO_START, VMGENID_IRQ,
};
use acpi_tables::aml::{
    AddressSpace, AddressSpaceCacheable, Arg, Device, EISAName, Else, Equal, If, Interrupt,
    Memory32Fixed, Method, Name, Notify, Package, Path, ResourceTemplate, Scope, IO,
};
use acpi_tables::sdt::Sdt;
use acpi_tables::Aml;
use devices::acpi_power::S5_SLEEP_TYPE;
use devices::serial::{COM1_BASE, COM1_IRQ};

fn com1() -> Vec<u8> {
    let hid = EISAName::new("PNP0501");
    let uid = 0u8;
    let io = IO::new(COM1_BASE as u16, COM1_BASE as u16, 1, 8);
    let irq = Interrupt::new(true, true, false, false, COM1_IRQ);
    let crs = ResourceTemplate::new(vec![&io, &irq]);
    let n_hid = Name::new("_HID".into(), &hid);
    let n_uid = Name::new("_UID".into(), &uid);
    let n_crs = Name::new("_CRS".into(), &crs);
    let mut out = Vec::new();
    Device::new("COM1".into(), vec![&n_hid, &n_uid, &n_crs]).to_aml_bytes(&mut out);
    out
}

fn pci_root() -> Vec<u8> {
    let hid = EISAName::new("PNP0A08");
    let cid = EISAName::new("PNP0A03");
    let zero = 0u8;
    let bus = AddressSpace::<u16>::new_bus_number(0, 0);
    let cfg = IO::new(0xcf8, 0xcf8, 1, 8);
    let io_low = AddressSpace::<u16>::new_io(0x0000, 0x0cf7, None);
    let io_high = AddressSpace::<u16>::new_io(0x0d00, 0xffff, None);
    let mmio = AddressSpace::<u32>::new_memory(
        AddressSpaceCacheable::NotCacheable,
        true,
        PCI_MMIO_START as u32,
        (PCI_MMIO_START + PCI_MMIO_SIZE - 1) as u32,
        None,
    );
    let crs = ResourceTemplate::new(vec![&bus, &cfg, &io_low, &io_high, &mmio]);
    let n_hid = Name::new("_HID".into(), &hid);
    let n_cid = Name::new("_CID".into(), &cid);
    let n_adr = Name::new("_ADR".into(), &zero);
    let n_seg = Name::new("_SEG".into(), &zero);
    let n_uid = Name::new("_UID".into(), &zero);
    let n_bbn = Name::new("_BBN".into(), &zero);
    let n_crs = Name::new("_CRS".into(), &crs);
    let mut out = Vec::new();
    Device::new(
        "PCI0".into(),
        vec![&n_hid, &n_cid, &n_adr, &n_seg, &n_uid, &n_bbn, &n_crs],
    )
    .to_aml_bytes(&mut out);
    out
}

/// Motherboard resources: claiming the ECAM window here is what makes
/// Linux trust the MCFG (it checks ACPI, not only E820).
fn motherboard() -> Vec<u8> {
    let hid = EISAName::new("PNP0C02");
    let uid = 0u8;
    let ecam = Memory32Fixed::new(false, PCI_ECAM_START as u32, PCI_ECAM_SIZE as u32);
    let crs = ResourceTemplate::new(vec![&ecam]);
    let n_hid = Name::new("_HID".into(), &hid);
    let n_uid = Name::new("_UID".into(), &uid);
    let n_crs = Name::new("_CRS".into(), &crs);
    let mut out = Vec::new();
    Device::new("MRES".into(), vec![&n_hid, &n_uid, &n_crs]).to_aml_bytes(&mut out);
    out
}

/// The power button, and the generic event device that raises its
/// notification (GSI [`GED_IRQ`]) and, with `vmgenid`, the generation ID's
/// (GSI [`VMGENID_IRQ`]; `_EVT` gets the GSI that fired).
fn power_button(vmgenid: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let pnp = EISAName::new("PNP0C0C");
    let zero = 0u8;
    let n_hid = Name::new("_HID".into(), &pnp);
    let n_uid = Name::new("_UID".into(), &zero);
    Device::new("PWRB".into(), vec![&n_hid, &n_uid]).to_aml_bytes(&mut out);

    let ged_hid: &'static str = "ACPI0013";
    let irq = Interrupt::new(true, true, false, false, GED_IRQ);
    let genid_irq = Interrupt::new(true, true, false, false, VMGENID_IRQ);
    let crs = match vmgenid {
        true => ResourceTemplate::new(vec![&irq, &genid_irq]),
        false => ResourceTemplate::new(vec![&irq]),
    };
    let pwrb = Path::new("\\_SB_.PWRB");
    let vgen = Path::new("\\_SB_.VGEN");
    let event = 0x80u8;
    let press = Notify::new(&pwrb, &event);
    let changed = Notify::new(&vgen, &event);
    let genid_gsi = VMGENID_IRQ;
    let is_genid = Equal::new(&Arg(0), &genid_gsi);
    let if_genid = If::new(&is_genid, vec![&changed]);
    let otherwise = Else::new(vec![&press]);
    let evt = match vmgenid {
        true => Method::new("_EVT".into(), 1, true, vec![&if_genid, &otherwise]),
        false => Method::new("_EVT".into(), 1, true, vec![&press]),
    };
    let n_hid = Name::new("_HID".into(), &ged_hid);
    let n_uid = Name::new("_UID".into(), &zero);
    let n_crs = Name::new("_CRS".into(), &crs);
    Device::new("GED_".into(), vec![&n_hid, &n_uid, &n_crs, &evt]).to_aml_bytes(&mut out);
    out
}

/// The whole DSDT; with `vmgenid`, also the `VGEN` device.
pub fn build(vmgenid: bool) -> Sdt {
    let mut dsdt = Sdt::new(*b"DSDT", 36, 6, *b"OVFRUN", *b"OVFRDSDT", 1);
    let com1 = com1();
    let pci = pci_root();
    let pwr = power_button(vmgenid);
    let mres = motherboard();
    let vgen = if vmgenid {
        crate::vmgenid::aml()
    } else {
        Vec::new()
    };
    struct Raw(Vec<u8>);
    impl Aml for Raw {
        fn to_aml_bytes(&self, sink: &mut dyn acpi_tables::AmlSink) {
            sink.vec(&self.0);
        }
    }
    let (a, b, c, d, e) = (Raw(com1), Raw(pci), Raw(pwr), Raw(mres), Raw(vgen));
    let mut body = Vec::new();
    Scope::new("\\_SB_".into(), vec![&a, &b, &c, &d, &e]).to_aml_bytes(&mut body);
    let s5_typ = S5_SLEEP_TYPE;
    let zero = 0u8;
    Name::new(
        "_S5_".into(),
        &Package::new(vec![&s5_typ, &s5_typ, &zero, &zero]),
    )
    .to_aml_bytes(&mut body);
    dsdt.append_slice(&body);
    dsdt
}
