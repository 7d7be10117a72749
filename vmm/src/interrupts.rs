//! KVM GSI routing: the IOAPIC/PIC pins every PC has, plus one GSI per
//! MSI-X vector. KVM_SET_GSI_ROUTING replaces the whole table, so the table
//! is kept here and sent whole after each change.

use devices::interrupt::{MsiMessage, MsiRouter};
use kvm_bindings::{
    kvm_irq_routing_entry, KvmIrqRouting, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE, KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI,
};
use kvm_ioctls::VmFd;
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use vmm_sys_util::eventfd::EventFd;

use crate::layout::IOAPIC_PINS;

/// GSIs above the IOAPIC pins, handed out for MSI vectors.
const MAX_GSI: u32 = 1024;

struct Table {
    msi: BTreeMap<u32, Option<MsiMessage>>,
    next_gsi: u32,
}

pub struct KvmInterrupts {
    vm: Arc<VmFd>,
    table: Mutex<Table>,
}

fn irqchip_entry(gsi: u32, chip: u32, pin: u32) -> kvm_irq_routing_entry {
    let mut e = kvm_irq_routing_entry {
        gsi,
        type_: KVM_IRQ_ROUTING_IRQCHIP,
        ..Default::default()
    };
    e.u.irqchip.irqchip = chip;
    e.u.irqchip.pin = pin;
    e
}

impl KvmInterrupts {
    pub fn new(vm: Arc<VmFd>) -> io::Result<Self> {
        let me = KvmInterrupts {
            vm,
            table: Mutex::new(Table {
                msi: BTreeMap::new(),
                next_gsi: IOAPIC_PINS,
            }),
        };
        me.commit(&me.table.lock().unwrap_or_else(|e| e.into_inner()))?;
        Ok(me)
    }

    fn commit(&self, table: &Table) -> io::Result<()> {
        let mut entries = Vec::new();
        for pin in 0..IOAPIC_PINS {
            if pin < 8 {
                entries.push(irqchip_entry(pin, KVM_IRQCHIP_PIC_MASTER, pin));
            } else if pin < 16 {
                entries.push(irqchip_entry(pin, KVM_IRQCHIP_PIC_SLAVE, pin - 8));
            }
            // The PIT is wired to IOAPIC pin 2 through the ISA IRQ 0 override.
            let ioapic_pin = if pin == 0 { 2 } else { pin };
            entries.push(irqchip_entry(pin, KVM_IRQCHIP_IOAPIC, ioapic_pin));
        }
        for (&gsi, msg) in &table.msi {
            let Some(msg) = msg else { continue };
            let mut e = kvm_irq_routing_entry {
                gsi,
                type_: KVM_IRQ_ROUTING_MSI,
                ..Default::default()
            };
            e.u.msi.address_lo = msg.address as u32;
            e.u.msi.address_hi = (msg.address >> 32) as u32;
            e.u.msi.data = msg.data;
            entries.push(e);
        }
        let routing = KvmIrqRouting::from_entries(&entries)
            .map_err(|e| io::Error::other(format!("GSI routing table too large: {e:?}")))?;
        self.vm
            .set_gsi_routing(&routing)
            .map_err(|e| io::Error::other(format!("KVM_SET_GSI_ROUTING: {e}")))
    }

    /// Attach `evt` to a line interrupt (IOAPIC pin).
    pub fn register_line(&self, evt: &EventFd, gsi: u32) -> io::Result<()> {
        self.vm
            .register_irqfd(evt, gsi)
            .map_err(|e| io::Error::other(format!("irqfd for GSI {gsi}: {e}")))
    }
}

impl MsiRouter for KvmInterrupts {
    fn route(&self, gsi: u32, msg: Option<MsiMessage>) -> io::Result<()> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.msi.get(&gsi) == Some(&msg) {
            return Ok(());
        }
        table.msi.insert(gsi, msg);
        self.commit(&table)
    }

    fn allocate(&self, evt: &EventFd) -> io::Result<u32> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.next_gsi >= MAX_GSI {
            return Err(io::Error::other("out of GSIs for MSI-X vectors"));
        }
        let gsi = table.next_gsi;
        table.next_gsi += 1;
        table.msi.insert(gsi, None);
        self.vm
            .register_irqfd(evt, gsi)
            .map_err(|e| io::Error::other(format!("irqfd for GSI {gsi}: {e}")))?;
        Ok(gsi)
    }
}
