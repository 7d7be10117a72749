//! Bus 0 and its two configuration mechanisms.
//!
//! Linux uses 0xCF8/0xCFC until it has checked the MCFG against the memory
//! map, then ECAM; both reach the same functions. Only function 0 of each
//! slot exists, and only bus 0.

use super::{BarMapper, PciDevice};
use crate::bus::BusDevice;
use std::sync::{Arc, Mutex};

pub const CONFIG_IO_BASE: u64 = 0xcf8;
pub const CONFIG_IO_LEN: u64 = 8;
const SLOTS: usize = 32;

pub type SharedPciDevice = Arc<Mutex<dyn PciDevice>>;

/// The devices on bus 0, by slot.
pub struct PciRoot {
    slots: Vec<Option<SharedPciDevice>>,
    mapper: Option<Arc<dyn BarMapper>>,
}

impl PciRoot {
    pub fn new() -> Self {
        PciRoot {
            slots: vec![None; SLOTS],
            mapper: None,
        }
    }

    /// Who moves a BAR's mapping when the guest reprograms it; without
    /// one, a moved BAR is only logged.
    pub fn set_bar_mapper(&mut self, mapper: Arc<dyn BarMapper>) {
        self.mapper = Some(mapper);
    }

    /// Put `dev` in the first free slot; returns the slot number.
    pub fn add(&mut self, dev: SharedPciDevice) -> Option<u8> {
        let slot = self.slots.iter().position(|s| s.is_none())?;
        self.slots[slot] = Some(dev);
        Some(slot as u8)
    }

    fn device(&self, bus: u8, slot: u8, function: u8) -> Option<&SharedPciDevice> {
        if bus != 0 || function != 0 {
            return None;
        }
        self.slots.get(slot as usize)?.as_ref()
    }

    /// Read `data.len()` bytes at config offset `offset` of bus/slot/function.
    pub fn read(&self, bus: u8, slot: u8, function: u8, offset: usize, data: &mut [u8]) {
        let Some(dev) = self.device(bus, slot, function) else {
            data.fill(0xff);
            return;
        };
        let dword = dev
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .config_read(offset / 4);
        let bytes = dword.to_le_bytes();
        let start = offset % 4;
        for (i, d) in data.iter_mut().enumerate() {
            *d = bytes.get(start + i).copied().unwrap_or(0xff);
        }
    }

    pub fn write(&self, bus: u8, slot: u8, function: u8, offset: usize, data: &[u8]) {
        let Some(dev) = self.device(bus, slot, function) else {
            return;
        };
        let moved = {
            let mut d = dev.lock().unwrap_or_else(|e| e.into_inner());
            d.config_write(offset, data);
            d.take_bar_move()
        };
        match (moved, &self.mapper) {
            (Some(mv), Some(m)) => m.move_bar(slot, mv),
            (Some(mv), None) => tracing::warn!(
                "PCI slot {slot}: BAR {} moved from {:?} to {:?} with nobody to map it",
                mv.index,
                mv.from,
                mv.to
            ),
            (None, _) => {}
        }
    }
}

impl Default for PciRoot {
    fn default() -> Self {
        Self::new()
    }
}

/// 0xCF8 (address) / 0xCFC..0xCFF (data).
pub struct PciConfigIo {
    root: Arc<PciRoot>,
    address: u32,
}

impl PciConfigIo {
    pub fn new(root: Arc<PciRoot>) -> Self {
        PciConfigIo { root, address: 0 }
    }

    fn target(&self, data_offset: u64) -> Option<(u8, u8, u8, usize)> {
        if self.address & 0x8000_0000 == 0 {
            return None;
        }
        let bus = (self.address >> 16) as u8;
        let slot = ((self.address >> 11) & 0x1f) as u8;
        let function = ((self.address >> 8) & 7) as u8;
        let reg = (self.address & 0xfc) as usize;
        Some((bus, slot, function, reg + data_offset as usize))
    }
}

impl BusDevice for PciConfigIo {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset < 4 {
            let bytes = self.address.to_le_bytes();
            for (i, d) in data.iter_mut().enumerate() {
                *d = bytes.get(offset as usize + i).copied().unwrap_or(0xff);
            }
            return;
        }
        match self.target(offset - 4) {
            Some((b, s, f, o)) => self.root.read(b, s, f, o, data),
            None => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset < 4 {
            if offset == 0 && data.len() == 4 {
                self.address = u32::from_le_bytes(data.try_into().unwrap());
            }
            return;
        }
        if let Some((b, s, f, o)) = self.target(offset - 4) {
            self.root.write(b, s, f, o, data);
        }
    }
}

/// The ECAM window: bus << 20 | slot << 15 | function << 12 | offset.
pub struct PciConfigMmio {
    root: Arc<PciRoot>,
}

impl PciConfigMmio {
    pub fn new(root: Arc<PciRoot>) -> Self {
        PciConfigMmio { root }
    }

    fn split(offset: u64) -> (u8, u8, u8, usize) {
        (
            (offset >> 20) as u8,
            ((offset >> 15) & 0x1f) as u8,
            ((offset >> 12) & 7) as u8,
            (offset & 0xfff) as usize,
        )
    }
}

impl BusDevice for PciConfigMmio {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let (b, s, f, o) = Self::split(offset);
        if o % 4 + data.len() > 4 {
            data.fill(0xff);
            return;
        }
        self.root.read(b, s, f, o, data);
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        let (b, s, f, o) = Self::split(offset);
        if o % 4 + data.len() > 4 {
            return;
        }
        self.root.write(b, s, f, o, data);
    }
}

#[cfg(test)]
mod tests {
    use super::super::HostBridge;
    use super::*;

    struct Moved(Mutex<Vec<(u8, super::super::BarMove)>>);
    impl BarMapper for Moved {
        fn move_bar(&self, slot: u8, mv: super::super::BarMove) {
            self.0.lock().unwrap().push((slot, mv));
        }
    }

    /// A device with one BAR that reports moves like the virtio transport.
    struct OneBar(super::super::ConfigSpace, Option<u64>);
    impl PciDevice for OneBar {
        fn config_read(&mut self, reg: usize) -> u32 {
            self.0.read_dword(reg)
        }
        fn config_write(&mut self, offset: usize, data: &[u8]) {
            self.0.write(offset, data)
        }
        fn take_bar_move(&mut self) -> Option<super::super::BarMove> {
            let mv = self.0.moved_bar(&[self.1])?;
            self.1 = mv.to;
            Some(mv)
        }
    }

    #[test]
    fn a_reprogrammed_bar_reaches_the_mapper_once() {
        let mut cs = super::super::ConfigSpace::new(super::super::PciId {
            vendor: 0x1af4,
            device: 0x1042,
            class: 0x010000,
            revision: 1,
            subsystem_vendor: 0x1af4,
            subsystem: 0x40,
        });
        cs.add_bar64(0, 0xc000_0000, 0x1_0000);
        let mut root = PciRoot::new();
        root.add(Arc::new(Mutex::new(HostBridge::new())));
        root.add(Arc::new(Mutex::new(OneBar(cs, Some(0xc000_0000)))));
        let moved = Arc::new(Moved(Mutex::new(Vec::new())));
        root.set_bar_mapper(moved.clone());
        let mut io = PciConfigIo::new(Arc::new(root));
        let select =
            |io: &mut PciConfigIo, reg: u32| io.write(0, &(0x8000_0800u32 | reg).to_le_bytes());
        select(&mut io, 0x10);
        io.write(4, &0xfebf_0000u32.to_le_bytes());
        select(&mut io, 0x14);
        io.write(4, &[0; 4]);
        select(&mut io, 0x04);
        io.write(4, &[0x06, 0]);
        io.write(4, &[0x06, 0]);
        let got: Vec<_> = moved
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(s, m)| (*s, m.from, m.to))
            .collect();
        assert_eq!(
            got,
            [(1, Some(0xc000_0000), Some(0xfebf_0000))],
            "one move, once decoding is on"
        );
    }

    #[test]
    fn both_mechanisms_reach_the_host_bridge() {
        let mut root = PciRoot::new();
        assert_eq!(root.add(Arc::new(Mutex::new(HostBridge::new()))), Some(0));
        let root = Arc::new(root);
        let mut io = PciConfigIo::new(root.clone());
        io.write(0, &0x8000_0000u32.to_le_bytes());
        let mut d = [0u8; 4];
        io.read(4, &mut d);
        assert_eq!(u32::from_le_bytes(d), 0x0008_1b36);
        let mut w = [0u8; 2];
        io.read(6, &mut w);
        assert_eq!(u16::from_le_bytes(w), 0x0008);
        // Slot 1 is empty.
        io.write(0, &(0x8000_0000u32 | 1 << 11).to_le_bytes());
        io.read(4, &mut d);
        assert_eq!(d, [0xff; 4]);
        let mut mm = PciConfigMmio::new(root);
        mm.read(0, &mut d);
        assert_eq!(u32::from_le_bytes(d), 0x0008_1b36);
        mm.read(1 << 15, &mut d);
        assert_eq!(d, [0xff; 4]);
        mm.read(2, &mut d);
        assert_eq!(d, [0xff; 4], "a dword read across the register boundary");
    }
}
