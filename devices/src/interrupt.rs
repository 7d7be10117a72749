//! Interrupt plumbing shared by devices: line interrupts through irqfd and
//! MSI messages through a routing trait the monitor implements with KVM.

use std::io;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// An edge on an eventfd that KVM turns into a guest interrupt (irqfd).
pub struct IrqTrigger {
    evt: EventFd,
}

impl IrqTrigger {
    pub fn new() -> io::Result<Self> {
        Ok(IrqTrigger {
            evt: EventFd::new(EFD_NONBLOCK)?,
        })
    }
    pub fn eventfd(&self) -> &EventFd {
        &self.evt
    }
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(IrqTrigger {
            evt: self.evt.try_clone()?,
        })
    }
    pub fn fire(&self) -> io::Result<()> {
        self.evt.write(1)
    }
}

impl vm_superio::Trigger for IrqTrigger {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        self.fire()
    }
}

/// One MSI message as the guest programmed it into an MSI-X table entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsiMessage {
    pub address: u64,
    pub data: u32,
}

/// What the transport needs from the monitor to deliver MSI-X: one GSI per
/// vector whose route can be changed, each with an irqfd. Implemented by the
/// vmm over KVM_SET_GSI_ROUTING; a plain recorder in unit tests.
pub trait MsiRouter: Send + Sync {
    /// Point `gsi` at `msg`, or mask it when `msg` is `None`.
    fn route(&self, gsi: u32, msg: Option<MsiMessage>) -> io::Result<()>;
    /// Allocate a GSI and attach `evt` to it as an irqfd.
    fn allocate(&self, evt: &EventFd) -> io::Result<u32>;
}
