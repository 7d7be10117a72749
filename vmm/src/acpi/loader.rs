//! The ACPI tables for firmware boot, handed over through fw_cfg with
//! QEMU's "linker/loader" script (`etc/table-loader`), which SeaBIOS and
//! OVMF run: allocate the files in guest memory, patch the pointers between
//! tables by the address each file landed at, fix the checksums.
//!
//! The same tables as direct boot ([`super::build_tables`]), built at base
//! 0 so that every pointer is an offset into `etc/acpi/tables`; the RSDP
//! goes in its own file, allocated in the F segment where the OS scans for
//! it. Command layout (128 bytes each, little-endian): QEMU's
//! `hw/acpi/bios-linker-loader.c`, SeaBIOS's `src/fw/romfile_loader.h`.

pub const TABLES_FILE: &str = "etc/acpi/tables";
pub const RSDP_FILE: &str = "etc/acpi/rsdp";

const CMD_ALLOCATE: u32 = 1;
const CMD_ADD_POINTER: u32 = 2;
const CMD_ADD_CHECKSUM: u32 = 3;
const ZONE_HIGH: u8 = 1;
const ZONE_FSEG: u8 = 2;
const CMD_SIZE: usize = 128;
const NAME_SIZE: usize = 56;

/// FADT: the 32-bit DSDT address and the 64-bit one (ACPI 6.x, table 5.9).
const FADT_DSDT: usize = 40;
const FADT_X_DSDT: usize = 140;
/// XSDT: the 64-bit entries after the 36-byte header.
const SDT_HEADER: usize = 36;
/// RSDP: the XSDT address; the checksums of the first 20 and all 36 bytes.
const RSDP_XSDT: usize = 24;

/// The three fw_cfg files.
pub struct AcpiFiles {
    pub tables: Vec<u8>,
    pub rsdp: Vec<u8>,
    pub loader: Vec<u8>,
}

fn name(out: &mut [u8], n: &str) {
    out[..n.len()].copy_from_slice(n.as_bytes());
}

fn allocate(file: &str, align: u32, zone: u8) -> [u8; CMD_SIZE] {
    let mut c = [0u8; CMD_SIZE];
    c[0..4].copy_from_slice(&CMD_ALLOCATE.to_le_bytes());
    name(&mut c[4..4 + NAME_SIZE], file);
    c[60..64].copy_from_slice(&align.to_le_bytes());
    c[64] = zone;
    c
}

fn add_pointer(dest: &str, src: &str, offset: usize, size: u8) -> [u8; CMD_SIZE] {
    let mut c = [0u8; CMD_SIZE];
    c[0..4].copy_from_slice(&CMD_ADD_POINTER.to_le_bytes());
    name(&mut c[4..4 + NAME_SIZE], dest);
    name(&mut c[60..60 + NAME_SIZE], src);
    c[116..120].copy_from_slice(&(offset as u32).to_le_bytes());
    c[120] = size;
    c
}

fn add_checksum(file: &str, at: usize, start: usize, len: usize) -> [u8; CMD_SIZE] {
    let mut c = [0u8; CMD_SIZE];
    c[0..4].copy_from_slice(&CMD_ADD_CHECKSUM.to_le_bytes());
    name(&mut c[4..4 + NAME_SIZE], file);
    c[60..64].copy_from_slice(&(at as u32).to_le_bytes());
    c[64..68].copy_from_slice(&(start as u32).to_le_bytes());
    c[68..72].copy_from_slice(&(len as u32).to_le_bytes());
    c
}

/// The tables for `vcpus` vCPUs as fw_cfg files.
pub fn build(vcpus: u8) -> AcpiFiles {
    let placed = super::build_tables(vcpus, 0, false);
    let end = placed
        .iter()
        .map(|(a, b)| *a as usize + b.len())
        .max()
        .unwrap_or(0);
    let mut tables = vec![0u8; end];
    let mut rsdp = Vec::new();
    let mut pointers = Vec::new();
    let mut checksums = Vec::new();
    for (addr, bytes) in &placed {
        let at = *addr as usize;
        if bytes.starts_with(b"RSD PTR ") {
            rsdp = bytes.clone();
            continue;
        }
        tables[at..at + bytes.len()].copy_from_slice(bytes);
        match &bytes[0..4] {
            b"FACP" => {
                // The 32-bit DSDT field too (SeaBIOS parses the DSDT through
                // it); both then hold the same address, as ACPI wants.
                let x = u64::from_le_bytes(bytes[FADT_X_DSDT..FADT_X_DSDT + 8].try_into().unwrap());
                tables[at + FADT_DSDT..at + FADT_DSDT + 4]
                    .copy_from_slice(&(x as u32).to_le_bytes());
                pointers.push((at + FADT_DSDT, 4));
                pointers.push((at + FADT_X_DSDT, 8));
            }
            b"XSDT" => {
                for e in (SDT_HEADER..bytes.len()).step_by(8) {
                    pointers.push((at + e, 8));
                }
            }
            _ => {}
        }
        checksums.push((at + 9, at, bytes.len()));
    }
    let mut loader = Vec::new();
    loader.extend(allocate(TABLES_FILE, 64, ZONE_HIGH));
    loader.extend(allocate(RSDP_FILE, 16, ZONE_FSEG));
    for (at, size) in pointers {
        loader.extend(add_pointer(TABLES_FILE, TABLES_FILE, at, size));
    }
    loader.extend(add_pointer(RSDP_FILE, TABLES_FILE, RSDP_XSDT, 8));
    for (at, start, len) in checksums {
        loader.extend(add_checksum(TABLES_FILE, at, start, len));
    }
    loader.extend(add_checksum(RSDP_FILE, 8, 0, 20));
    loader.extend(add_checksum(RSDP_FILE, 32, 0, rsdp.len()));
    AcpiFiles {
        tables,
        rsdp,
        loader,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run the script as SeaBIOS's romfile_loader does, with the files
    /// "allocated" at the given addresses; returns (tables, rsdp).
    fn run(f: &AcpiFiles, tables_at: u64, rsdp_at: u64) -> (Vec<u8>, Vec<u8>) {
        let mut t = f.tables.clone();
        let mut r = f.rsdp.clone();
        let base = |n: &[u8]| {
            if n.starts_with(TABLES_FILE.as_bytes()) {
                tables_at
            } else {
                rsdp_at
            }
        };
        for c in f.loader.chunks(CMD_SIZE) {
            let cmd = u32::from_le_bytes(c[0..4].try_into().unwrap());
            let file = &c[4..60];
            let buf = if file.starts_with(TABLES_FILE.as_bytes()) {
                &mut t
            } else {
                &mut r
            };
            match cmd {
                CMD_ALLOCATE => {}
                CMD_ADD_POINTER => {
                    let off = u32::from_le_bytes(c[116..120].try_into().unwrap()) as usize;
                    let size = c[120] as usize;
                    let mut v = [0u8; 8];
                    v[..size].copy_from_slice(&buf[off..off + size]);
                    let p = u64::from_le_bytes(v) + base(&c[60..116]);
                    buf[off..off + size].copy_from_slice(&p.to_le_bytes()[..size]);
                }
                CMD_ADD_CHECKSUM => {
                    let at = u32::from_le_bytes(c[60..64].try_into().unwrap()) as usize;
                    let start = u32::from_le_bytes(c[64..68].try_into().unwrap()) as usize;
                    let len = u32::from_le_bytes(c[68..72].try_into().unwrap()) as usize;
                    let sum = buf[start..start + len]
                        .iter()
                        .fold(0u8, |a, b| a.wrapping_add(*b));
                    buf[at] = buf[at].wrapping_sub(sum);
                }
                other => panic!("unknown command {other}"),
            }
        }
        (t, r)
    }

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    #[test]
    fn the_script_links_the_tables_wherever_the_firmware_puts_them() {
        let f = build(2);
        assert_eq!(f.loader.len() % CMD_SIZE, 0);
        assert_eq!(f.rsdp.len(), 36);
        let (tables_at, rsdp_at) = (0x7ffe_0000u64, 0xf5a30u64);
        let (t, r) = run(&f, tables_at, rsdp_at);
        assert_eq!(sum(&r[..20]), 0);
        assert_eq!(sum(&r), 0);
        let xsdt = u64::from_le_bytes(r[24..32].try_into().unwrap());
        let x = (xsdt - tables_at) as usize;
        assert_eq!(&t[x..x + 4], b"XSDT");
        let len = |at: usize| u32::from_le_bytes(t[at + 4..at + 8].try_into().unwrap()) as usize;
        assert_eq!(sum(&t[x..x + len(x)]), 0);
        let mut sigs = Vec::new();
        for e in (x + 36..x + len(x)).step_by(8) {
            let at = (u64::from_le_bytes(t[e..e + 8].try_into().unwrap()) - tables_at) as usize;
            sigs.push(String::from_utf8_lossy(&t[at..at + 4]).to_string());
            assert_eq!(
                sum(&t[at..at + len(at)]),
                0,
                "checksum of {}",
                sigs.last().unwrap()
            );
            if &t[at..at + 4] == b"FACP" {
                let d32 = u32::from_le_bytes(t[at + 40..at + 44].try_into().unwrap()) as u64;
                let d64 = u64::from_le_bytes(t[at + 140..at + 148].try_into().unwrap());
                assert_eq!(d32, d64);
                let d = (d64 - tables_at) as usize;
                assert_eq!(&t[d..d + 4], b"DSDT");
                assert_eq!(sum(&t[d..d + len(d)]), 0);
            }
        }
        assert_eq!(sigs, ["FACP", "APIC", "MCFG"]);
    }
}
