//! A SCSI CD-ROM logical unit (SPC-3 / MMC-6 subset) as a pure function:
//! a CDB and the read-only medium in, a status with data or fixed-format
//! sense data out. No virtio here (see [`super`]), so every command is
//! tested on its own.
//!
//! The unit answers what Linux's `sr` driver, `cdrom_id` and the SCSI
//! mid-layer send: INQUIRY (standard and VPD 0x00/0x80/0x83), TEST UNIT
//! READY, READ CAPACITY(10), READ(10)/(12), MODE SENSE(6)/(10) (page 0x2A
//! and 0x3F), GET CONFIGURATION, READ TOC/PMA/ATIP (formats 0 and 1),
//! READ DISC INFORMATION, GET EVENT STATUS NOTIFICATION (polled, media
//! class), REQUEST SENSE, PREVENT ALLOW MEDIUM REMOVAL, START STOP UNIT
//! and REPORT LUNS. Everything else is CHECK CONDITION, ILLEGAL REQUEST,
//! INVALID COMMAND OPERATION CODE.

use super::cdrom_pages as pages;
use block_source::BlockSource;
use std::sync::Arc;

/// Logical block size of a CD-ROM data track.
pub const BLOCK: u64 = 2048;
/// Largest READ accepted (the controller advertises less in max_sectors),
/// so a guest cannot make us allocate more.
pub const MAX_READ_BLOCKS: u64 = 512;

pub const GOOD: u8 = 0x00;
pub const CHECK_CONDITION: u8 = 0x02;

/// Sense key, additional sense code and qualifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
}

pub const NO_SENSE: Sense = Sense {
    key: 0x00,
    asc: 0,
    ascq: 0,
};
pub const MEDIUM_NOT_PRESENT: Sense = Sense {
    key: 0x02,
    asc: 0x3a,
    ascq: 0,
};
pub const UNRECOVERED_READ_ERROR: Sense = Sense {
    key: 0x03,
    asc: 0x11,
    ascq: 0,
};
pub const INVALID_OPCODE: Sense = Sense {
    key: 0x05,
    asc: 0x20,
    ascq: 0,
};
pub const LBA_OUT_OF_RANGE: Sense = Sense {
    key: 0x05,
    asc: 0x21,
    ascq: 0,
};
pub const INVALID_FIELD_IN_CDB: Sense = Sense {
    key: 0x05,
    asc: 0x24,
    ascq: 0,
};
pub const LUN_NOT_SUPPORTED: Sense = Sense {
    key: 0x05,
    asc: 0x25,
    ascq: 0,
};
pub const SAVING_NOT_SUPPORTED: Sense = Sense {
    key: 0x05,
    asc: 0x39,
    ascq: 0,
};
pub const REMOVAL_PREVENTED: Sense = Sense {
    key: 0x05,
    asc: 0x53,
    ascq: 0x02,
};

impl Sense {
    /// Fixed-format sense data (response code 0x70), 18 bytes.
    pub fn fixed(self) -> [u8; 18] {
        let mut s = [0u8; 18];
        s[0] = 0x70;
        s[2] = self.key;
        s[7] = 10;
        s[12] = self.asc;
        s[13] = self.ascq;
        s
    }
}

/// The outcome of one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// SCSI status: [`GOOD`] or [`CHECK_CONDITION`].
    pub status: u8,
    /// Data-in, already cut to the CDB's allocation length.
    pub data: Vec<u8>,
    /// Fixed-format sense data with CHECK CONDITION, else empty.
    pub sense: Vec<u8>,
}

impl Outcome {
    pub fn good(data: Vec<u8>) -> Self {
        Outcome {
            status: GOOD,
            data,
            sense: Vec::new(),
        }
    }
    pub fn check(sense: Sense) -> Self {
        Outcome {
            status: CHECK_CONDITION,
            data: Vec::new(),
            sense: sense.fixed().to_vec(),
        }
    }
}

/// The drive: a read-only medium in a tray that can be locked and opened.
pub struct Cdrom {
    medium: Arc<dyn BlockSource>,
    blocks: u64,
    serial: String,
    loaded: bool,
    prevent: bool,
}

type Reply = Result<Vec<u8>, Sense>;

fn be16(b: &[u8], i: usize) -> usize {
    u16::from_be_bytes([b[i], b[i + 1]]) as usize
}
fn be32(b: &[u8], i: usize) -> u64 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as u64
}

/// Length of a CDB by its operation code's group.
fn cdb_len(opcode: u8) -> usize {
    match opcode >> 5 {
        0 => 6,
        1 | 2 => 10,
        4 => 16,
        5 => 12,
        _ => 6,
    }
}

/// Cut `data` to the allocation length the CDB allows.
fn cut(mut data: Vec<u8>, alloc: usize) -> Vec<u8> {
    data.truncate(alloc);
    data
}

impl Cdrom {
    /// A drive with `medium` loaded; a medium whose size is not a whole
    /// number of blocks reads as zeros up to the next block.
    pub fn new(medium: Arc<dyn BlockSource>, serial: &str) -> Self {
        let blocks = medium.capacity().div_ceil(BLOCK);
        let serial: String = serial
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(20)
            .collect();
        Cdrom {
            medium,
            blocks,
            serial,
            loaded: true,
            prevent: false,
        }
    }

    /// Number of 2048-byte blocks on the medium.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    fn ready(&self) -> Result<(), Sense> {
        if self.loaded && self.blocks > 0 {
            Ok(())
        } else {
            Err(MEDIUM_NOT_PRESENT)
        }
    }

    /// Execute one CDB (trailing padding bytes are ignored).
    pub fn execute(&mut self, cdb: &[u8]) -> Outcome {
        let Some(&opcode) = cdb.first() else {
            return Outcome::check(INVALID_OPCODE);
        };
        if cdb.len() < cdb_len(opcode) {
            return Outcome::check(INVALID_FIELD_IN_CDB);
        }
        match self.dispatch(opcode, cdb) {
            Ok(data) => Outcome::good(data),
            Err(sense) => Outcome::check(sense),
        }
    }

    fn dispatch(&mut self, opcode: u8, c: &[u8]) -> Reply {
        match opcode {
            0x00 => self.ready().map(|_| Vec::new()),
            0x03 => self.request_sense(c),
            0x12 => self.inquiry(c),
            0x1a => self.mode_sense(c[2], c[4] as usize, false),
            0x5a => self.mode_sense(c[2], be16(c, 7), true),
            0x1b => self.start_stop(c[4]),
            0x1e => {
                self.prevent = c[4] & 1 != 0;
                Ok(Vec::new())
            }
            0x25 => self.read_capacity(),
            0x28 => self.read(be32(c, 2), be16(c, 7) as u64),
            0xa8 => self.read(be32(c, 2), be32(c, 6)),
            0x43 => self.read_toc(c),
            0x46 => self.get_configuration(c),
            0x4a => self.event_status(c),
            0x51 => self.read_disc_information(c),
            0xa0 => Ok(cut(pages::report_luns(), be32(c, 6) as usize)),
            _ => Err(INVALID_OPCODE),
        }
    }

    fn request_sense(&self, c: &[u8]) -> Reply {
        if c[1] & 1 != 0 {
            return Err(INVALID_FIELD_IN_CDB); // descriptor format
        }
        let sense = match self.ready() {
            Ok(()) => NO_SENSE,
            Err(s) => s,
        };
        Ok(cut(sense.fixed().to_vec(), c[4] as usize))
    }

    fn inquiry(&self, c: &[u8]) -> Reply {
        let alloc = be16(c, 3);
        let evpd = c[1] & 1 != 0;
        let data = match (evpd, c[2]) {
            (false, 0) => pages::standard_inquiry(),
            (false, _) => return Err(INVALID_FIELD_IN_CDB),
            (true, 0x00) => pages::vpd(0x00, &[0x00, 0x80, 0x83]),
            (true, 0x80) => pages::vpd(0x80, self.serial.as_bytes()),
            (true, 0x83) => pages::vpd(0x83, &pages::device_id(&self.serial)),
            (true, _) => return Err(INVALID_FIELD_IN_CDB),
        };
        Ok(cut(data, alloc))
    }

    fn mode_sense(&self, pc_page: u8, alloc: usize, ten: bool) -> Reply {
        let (pc, page) = (pc_page >> 6, pc_page & 0x3f);
        if pc == 3 {
            return Err(SAVING_NOT_SUPPORTED);
        }
        let body = match page {
            0x2a | 0x3f => pages::capabilities_page(pc == 1, self.prevent),
            _ => return Err(INVALID_FIELD_IN_CDB),
        };
        // medium type 0x01: 120 mm CD-ROM data only (MMC)
        let medium = if self.loaded { 0x01 } else { 0x70 };
        Ok(cut(pages::mode_header(&body, medium, ten), alloc))
    }

    fn start_stop(&mut self, flags: u8) -> Reply {
        let (start, load_eject) = (flags & 1 != 0, flags & 2 != 0);
        if load_eject && flags >> 4 == 0 {
            if start {
                self.loaded = true;
            } else if self.prevent {
                return Err(REMOVAL_PREVENTED);
            } else {
                self.loaded = false;
            }
        }
        Ok(Vec::new())
    }

    fn read_capacity(&self) -> Reply {
        self.ready()?;
        let last = u32::try_from(self.blocks - 1).unwrap_or(u32::MAX);
        let mut d = last.to_be_bytes().to_vec();
        d.extend_from_slice(&(BLOCK as u32).to_be_bytes());
        Ok(d)
    }

    fn read(&self, lba: u64, count: u64) -> Reply {
        self.ready()?;
        if lba.checked_add(count).is_none_or(|end| end > self.blocks) {
            return Err(LBA_OUT_OF_RANGE);
        }
        if count > MAX_READ_BLOCKS {
            return Err(INVALID_FIELD_IN_CDB);
        }
        let mut data = vec![0u8; (count * BLOCK) as usize];
        let offset = lba * BLOCK;
        // the tail of a medium that is not whole blocks reads as zeros
        let avail = self.medium.capacity().saturating_sub(offset);
        let n = (data.len() as u64).min(avail) as usize;
        if let Err(e) = self.medium.read_at(&mut data[..n], offset) {
            tracing::warn!("CD-ROM: read of {n} bytes at {offset}: {e}");
            return Err(UNRECOVERED_READ_ERROR);
        }
        Ok(data)
    }

    fn read_toc(&self, c: &[u8]) -> Reply {
        self.ready()?;
        let msf = c[1] & 2 != 0;
        // SFF-8020 drivers put the format in byte 9's top bits
        let format = match c[2] & 0x0f {
            0 => c[9] >> 6,
            f => f,
        };
        let data = match format {
            0 => pages::toc(c[6], self.blocks, msf).ok_or(INVALID_FIELD_IN_CDB)?,
            1 => pages::session_info(msf),
            _ => return Err(INVALID_FIELD_IN_CDB),
        };
        Ok(cut(data, be16(c, 7)))
    }

    fn get_configuration(&self, c: &[u8]) -> Reply {
        let rt = c[1] & 3;
        if rt == 3 {
            return Err(INVALID_FIELD_IN_CDB);
        }
        let data = pages::configuration(rt, be16(c, 2) as u16, self.loaded && self.blocks > 0);
        Ok(cut(data, be16(c, 7)))
    }

    fn event_status(&self, c: &[u8]) -> Reply {
        if c[1] & 1 == 0 {
            return Err(INVALID_FIELD_IN_CDB); // asynchronous mode unsupported
        }
        let data = pages::media_event(c[4], self.loaded && self.blocks > 0);
        Ok(cut(data, be16(c, 7)))
    }

    fn read_disc_information(&self, c: &[u8]) -> Reply {
        self.ready()?;
        if c[1] & 7 != 0 {
            return Err(INVALID_FIELD_IN_CDB);
        }
        Ok(cut(pages::disc_information(), be16(c, 7)))
    }
}

/// What a logical unit that does not exist answers (SPC-3 4.5.1):
/// INQUIRY says "no device here", REQUEST SENSE reports it, everything
/// else fails with LOGICAL UNIT NOT SUPPORTED.
pub fn absent_lun(cdb: &[u8]) -> Outcome {
    match cdb.first() {
        Some(0x12) if cdb.len() >= 6 => {
            let mut d = pages::standard_inquiry();
            d[0] = 0x7f;
            Outcome::good(cut(d, be16(cdb, 3)))
        }
        Some(0x03) if cdb.len() >= 6 => {
            Outcome::good(cut(LUN_NOT_SUPPORTED.fixed().to_vec(), cdb[4] as usize))
        }
        Some(0xa0) if cdb.len() >= 12 => {
            Outcome::good(cut(pages::report_luns(), be32(cdb, 6) as usize))
        }
        _ => Outcome::check(LUN_NOT_SUPPORTED),
    }
}

#[cfg(test)]
#[path = "cdrom_tests.rs"]
mod tests;
