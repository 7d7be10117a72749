//! A type-0 PCI configuration space: the header, BARs with sizing, and a
//! capability list. Only the bits a driver may change are writable.

pub const CONFIG_SIZE: usize = 4096;
const BAR0: usize = 0x10;
const CAP_PTR: usize = 0x34;
const FIRST_CAP: usize = 0x40;
const STATUS_CAP_LIST: u16 = 1 << 4;

/// A 64-bit memory BAR (the only kind the devices here use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bar {
    /// BAR index (0, 2 or 4: a 64-bit BAR takes two slots).
    pub index: usize,
    pub addr: u64,
    pub size: u64,
}

pub struct ConfigSpace {
    bytes: Vec<u8>,
    /// Bits the guest may write, per byte.
    writable: Vec<u8>,
    bars: Vec<Bar>,
    next_cap: usize,
    last_cap: Option<usize>,
}

/// Identity of a device.
#[derive(Debug, Clone, Copy)]
pub struct PciId {
    pub vendor: u16,
    pub device: u16,
    pub class: u32,
    pub revision: u8,
    pub subsystem_vendor: u16,
    pub subsystem: u16,
}

impl ConfigSpace {
    pub fn new(id: PciId) -> Self {
        let mut c = ConfigSpace {
            bytes: vec![0; CONFIG_SIZE],
            writable: vec![0; CONFIG_SIZE],
            bars: Vec::new(),
            next_cap: FIRST_CAP,
            last_cap: None,
        };
        c.set_u16(0, id.vendor);
        c.set_u16(2, id.device);
        c.bytes[8] = id.revision;
        c.bytes[9] = id.class as u8;
        c.bytes[10] = (id.class >> 8) as u8;
        c.bytes[11] = (id.class >> 16) as u8;
        c.set_u16(0x2c, id.subsystem_vendor);
        c.set_u16(0x2e, id.subsystem);
        // Command: I/O, memory, bus master, INTx disable.
        c.writable[4] = 0x07;
        c.writable[5] = 0x04;
        // Interrupt line is scratch for the OS.
        c.writable[0x3c] = 0xff;
        c
    }

    fn set_u16(&mut self, off: usize, v: u16) {
        self.bytes[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }

    pub fn set_u32(&mut self, off: usize, v: u32) {
        self.bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    pub fn u32_at(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.bytes[off..off + 4].try_into().unwrap())
    }

    /// Add a 64-bit, non-prefetchable memory BAR of `size` (a power of two
    /// of at least 4 KiB) at `addr`.
    pub fn add_bar64(&mut self, index: usize, addr: u64, size: u64) {
        debug_assert!(size.is_power_of_two() && size >= 4096 && index < 5);
        let off = BAR0 + 4 * index;
        // Type 64-bit (bits 2:1 = 10).
        self.set_u32(off, (addr as u32 & !0xf) | 0x4);
        self.set_u32(off + 4, (addr >> 32) as u32);
        let mask = !(size - 1);
        self.writable[off..off + 4].copy_from_slice(&((mask as u32) & !0xf).to_le_bytes());
        self.writable[off + 4..off + 8].copy_from_slice(&((mask >> 32) as u32).to_le_bytes());
        self.bars.push(Bar { index, addr, size });
    }

    /// Append a capability (`body` starts after the id/next bytes); returns
    /// its offset. `writable` masks the body like `writable` above.
    pub fn add_capability(&mut self, id: u8, body: &[u8], writable: &[u8]) -> usize {
        let off = self.next_cap;
        let len = (2 + body.len() + 3) & !3;
        assert!(
            off + len <= 256,
            "capabilities overflow the standard config space"
        );
        self.bytes[off] = id;
        self.bytes[off + 1] = 0;
        self.bytes[off + 2..off + 2 + body.len()].copy_from_slice(body);
        for (i, w) in writable.iter().enumerate() {
            self.writable[off + 2 + i] = *w;
        }
        match self.last_cap {
            None => self.bytes[CAP_PTR] = off as u8,
            Some(prev) => self.bytes[prev + 1] = off as u8,
        }
        self.last_cap = Some(off);
        self.next_cap = off + len;
        let status = u16::from_le_bytes([self.bytes[6], self.bytes[7]]) | STATUS_CAP_LIST;
        self.set_u16(6, status);
        off
    }

    /// Read the dword at `reg * 4`.
    pub fn read_dword(&self, reg: usize) -> u32 {
        let off = reg * 4;
        if off + 4 > CONFIG_SIZE {
            return 0xffff_ffff;
        }
        self.u32_at(off)
    }

    /// Write `data` at byte `off`, keeping read-only bits.
    pub fn write(&mut self, off: usize, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            let o = off + i;
            if o >= CONFIG_SIZE {
                return;
            }
            let w = self.writable[o];
            self.bytes[o] = (self.bytes[o] & !w) | (b & w);
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Take back saved bytes (a snapshot): they must be a whole config
    /// space of the same function (vendor and device id), else nothing
    /// changes. The BARs' addresses and the command register come with them.
    pub fn restore_bytes(&mut self, saved: &[u8]) -> Result<(), String> {
        if saved.len() != CONFIG_SIZE {
            return Err(format!(
                "{} bytes of PCI configuration, not {CONFIG_SIZE}",
                saved.len()
            ));
        }
        if saved[..4] != self.bytes[..4] {
            return Err(format!(
                "saved PCI function {:02x}{:02x}:{:02x}{:02x} is not this {:02x}{:02x}:{:02x}{:02x}",
                saved[1], saved[0], saved[3], saved[2],
                self.bytes[1], self.bytes[0], self.bytes[3], self.bytes[2]
            ));
        }
        self.bytes.copy_from_slice(saved);
        Ok(())
    }

    /// BARs as the guest has them programmed now.
    pub fn bars(&self) -> Vec<Bar> {
        self.bars
            .iter()
            .map(|b| {
                let off = BAR0 + 4 * b.index;
                let addr = (self.u32_at(off) & !0xf) as u64 | ((self.u32_at(off + 4) as u64) << 32);
                Bar { addr, ..*b }
            })
            .collect()
    }

    /// Whether memory decoding is on (command register bit 1).
    pub fn memory_enabled(&self) -> bool {
        self.bytes[4] & 2 != 0
    }

    /// The first BAR programmed, with memory decoding on, at another
    /// address than `decoded[i]` (where the VMM maps BAR i now). With
    /// decoding off nothing moves: the mapping stays where it was (an OS
    /// turns decoding off to size or reprogram a BAR and on again; a
    /// device that answers there meanwhile is harmless, and a device in use
    /// never loses its mapping). A BAR that holds its size mask (a sizing
    /// write not yet undone) is not an address.
    pub fn moved_bar(&self, decoded: &[Option<u64>]) -> Option<super::BarMove> {
        if !self.memory_enabled() {
            return None;
        }
        self.bars()
            .into_iter()
            .zip(decoded)
            .filter(|(b, _)| !is_size_mask(b))
            .map(|(b, &from)| super::BarMove {
                index: b.index,
                from,
                to: Some(b.addr),
                size: b.size,
            })
            .find(|mv| mv.from != mv.to)
    }
}

/// Whether a BAR's programmed value is (part of) its size mask: all ones
/// written for sizing, in the low or the high dword.
fn is_size_mask(b: &Bar) -> bool {
    let mask = !(b.size - 1);
    b.addr >> 32 == 0xffff_ffff || b.addr & 0xffff_ffff == mask & 0xffff_fff0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> PciId {
        PciId {
            vendor: 0x1af4,
            device: 0x1042,
            class: 0x018000,
            revision: 1,
            subsystem_vendor: 0x1af4,
            subsystem: 0x40,
        }
    }

    #[test]
    fn bar_sizing_and_capability_chain() {
        let mut c = ConfigSpace::new(id());
        c.add_bar64(0, 0xc000_0000, 0x1_0000);
        // Sizing: write all ones, read the mask back.
        c.write(0x10, &[0xff; 4]);
        c.write(0x14, &[0xff; 4]);
        assert_eq!(c.read_dword(4), 0xffff_0004);
        assert_eq!(c.read_dword(5), 0xffff_ffff);
        c.write(0x10, &0xc000_0000u32.to_le_bytes());
        c.write(0x14, &[0; 4]);
        assert_eq!(c.bars()[0].addr, 0xc000_0000);
        // Vendor id is read-only.
        c.write(0, &[0, 0]);
        assert_eq!(c.read_dword(0) & 0xffff, 0x1af4);
        let a = c.add_capability(0x09, &[1, 2, 3], &[]);
        let b = c.add_capability(0x11, &[0; 10], &[0, 0xc0]);
        assert_eq!(c.bytes()[0x34] as usize, a);
        assert_eq!(c.bytes()[a + 1] as usize, b);
        assert_eq!(c.read_dword(1) >> 16 & 0x10, 0x10);
        c.write(b + 3, &[0xff]);
        assert_eq!(c.bytes()[b + 3], 0xc0);
        assert_eq!(c.read_dword(2000), 0xffff_ffff);
    }

    #[test]
    fn a_bar_moves_where_programmed_once_decoding_is_on() {
        let mut c = ConfigSpace::new(id());
        c.add_bar64(0, 0xc000_0000, 0x1_0000);
        let at = [Some(0xc000_0000)];
        assert_eq!(
            c.moved_bar(&at),
            None,
            "decoding off (reset): the mapping stays"
        );
        // Firmware sizes and assigns with decoding off.
        c.write(0x10, &[0xff; 4]);
        c.write(0x14, &[0xff; 4]);
        assert_eq!(c.moved_bar(&at), None, "decoding off");
        c.write(4, &[0x06, 0]);
        assert_eq!(c.moved_bar(&at), None, "a size mask is no address");
        c.write(0x10, &0xfebf_0000u32.to_le_bytes());
        c.write(0x14, &[0; 4]);
        let mv = c.moved_bar(&at).expect("moved");
        assert_eq!(
            (mv.index, mv.from, mv.to, mv.size),
            (0, Some(0xc000_0000), Some(0xfebf_0000), 0x1_0000)
        );
        assert_eq!(c.moved_bar(&[Some(0xfebf_0000)]), None, "once mapped there");
        // Above 4 GiB through the high dword.
        c.write(0x14, &1u32.to_le_bytes());
        assert_eq!(
            c.moved_bar(&[Some(0xfebf_0000)]).unwrap().to,
            Some(0x1_febf_0000)
        );
        c.write(4, &[0, 0]);
        assert_eq!(
            c.moved_bar(&[Some(0xfebf_0000)]),
            None,
            "decoding off again"
        );
    }
}
