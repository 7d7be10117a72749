//! Unit tests of the PE reader on images built here byte by byte; the
//! real systemd stub is exercised in `tests/uefi.rs`.

use super::*;

/// A minimal PE: DOS header, signature at 0x80, COFF header, an optional
/// header of `opt` bytes, then `secs` (name, pointer, raw size, virtual size).
fn image(secs: &[(&str, u32, u32, u32)], opt: u16, len: usize) -> Vec<u8> {
    let mut d = vec![0u8; len];
    d[0..2].copy_from_slice(b"MZ");
    d[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    d[0x80..0x84].copy_from_slice(b"PE\0\0");
    d[0x86..0x88].copy_from_slice(&(secs.len() as u16).to_le_bytes());
    d[0x94..0x96].copy_from_slice(&opt.to_le_bytes());
    let mut at = 0x98 + opt as usize;
    for (name, ptr, raw, virt) in secs {
        d[at..at + name.len()].copy_from_slice(name.as_bytes());
        d[at + 8..at + 12].copy_from_slice(&virt.to_le_bytes());
        d[at + 16..at + 20].copy_from_slice(&raw.to_le_bytes());
        d[at + 20..at + 24].copy_from_slice(&ptr.to_le_bytes());
        at += 40;
    }
    d
}

#[test]
fn finds_uki_sections_clipped_by_virtual_size() {
    let d = image(
        &[
            (".text", 0x400, 0x200, 0x180),
            (".cmdline", 0x600, 0x200, 11),
            (".linux", 0x800, 0x400, 0x3f0),
            (".initrd", 0xc00, 0x200, 0),
        ],
        0xf0,
        0xe00,
    );
    assert_eq!(headers_len(&d).unwrap(), 0x98 + 0xf0 + 4 * 40);
    let s = sections(&d, d.len() as u64).unwrap();
    assert_eq!(s.len(), 4);
    let u = uki(&s).unwrap();
    assert_eq!(u.cmdline, Some(0x600..0x600 + 11));
    assert_eq!(u.linux, Some(0x800..0xbf0));
    assert_eq!(u.initrd, Some(0xc00..0xe00), "VirtualSize 0 means raw size");
    assert_eq!(u.osrel, None);
}

#[test]
fn hostile_headers_are_refused() {
    assert_eq!(sections(b"", 0), Err(PeError::NoDosHeader));
    assert!(matches!(sections(b"MZ", 2), Err(PeError::Truncated { .. })));
    let mut d = image(&[], 0, 0x200);
    d[0x3c..0x40].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        sections(&d, 0x200),
        Err(PeError::BadLfanew(u32::MAX as u64))
    );
    let mut d = image(&[], 0, 0x200);
    d[0x80] = b'X';
    assert_eq!(sections(&d, 0x200), Err(PeError::NoSignature(0x80)));
    let mut d = image(&[], 0, 0x200);
    d[0x86..0x88].copy_from_slice(&0xffffu16.to_le_bytes());
    assert_eq!(sections(&d, 0x200), Err(PeError::TooManySections(0xffff)));
    // Table cut off by the end of what was read.
    let mut d = image(&[(".linux", 0x100, 0x10, 0x10)], 0xf0, 0x400);
    d.truncate(0x190);
    assert!(matches!(
        sections(&d, 0x1000),
        Err(PeError::Truncated { .. })
    ));
    // Optional header size pushing the table past the bytes.
    let d = image(&[], 0xffff, 0x200);
    assert!(matches!(
        sections(&d, 0x200),
        Err(PeError::Truncated { .. })
    ));
}

#[test]
fn sections_beyond_the_file_or_overlapping_are_refused() {
    let d = image(&[(".linux", 0x200, 0xffff_ffff, 0xffff_ffff)], 0, 0x400);
    assert!(matches!(
        sections(&d, 0x400),
        Err(PeError::OutOfFile { ref name, .. }) if name == ".linux"
    ));
    let d = image(
        &[
            (".linux", 0x200, 0x100, 0x100),
            (".initrd", 0x280, 0x100, 0x100),
        ],
        0,
        0x400,
    );
    let s = sections(&d, 0x400).unwrap();
    assert_eq!(
        uki(&s),
        Err(PeError::Overlap(".linux".into(), ".initrd".into()))
    );
    // The first of two same-named sections counts, as in the stub.
    let d = image(
        &[(".linux", 0x200, 0x80, 0x80), (".linux", 0x300, 0x80, 0x80)],
        0,
        0x400,
    );
    assert_eq!(
        uki(&sections(&d, 0x400).unwrap()).unwrap().linux,
        Some(0x200..0x280)
    );
}

#[test]
fn os_release_names() {
    let t = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
    assert_eq!(
        pretty_name(t).as_deref(),
        Some("Debian GNU/Linux 12 (bookworm)")
    );
    assert_eq!(pretty_name("NAME=Arch\n").as_deref(), Some("Arch"));
    assert_eq!(pretty_name("PRETTY_NAME=\"\"\n"), None);
}
