//! Little-endian field access and the btrfs key, shared by the btrfs
//! reader's parts. Callers check lengths first; these index directly.

pub fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
pub fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
pub fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// A btrfs key: items are sorted by (objectid, type, offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub objectid: u64,
    pub kind: u8,
    pub offset: u64,
}

impl Key {
    pub const LEN: usize = 17;

    pub fn new(objectid: u64, kind: u8, offset: u64) -> Key {
        Key {
            objectid,
            kind,
            offset,
        }
    }

    /// From the first 17 bytes of `b`.
    pub fn parse(b: &[u8]) -> Key {
        Key {
            objectid: le64(b, 0),
            kind: b[8],
            offset: le64(b, 9),
        }
    }
}

/// CRC-32C as btrfs hashes directory entry names: seed `!1`, no final
/// inversion (the kernel's raw `crc32c`).
pub fn name_hash(name: &[u8]) -> u64 {
    let mut crc = !1u32;
    for &b in name {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82f6_3b78 & (crc & 1).wrapping_neg());
        }
    }
    crc as u64
}
