//! VHD and VHDX against the real qemu-img (issue 16): random disks with
//! holes are converted by `qemu-img convert -O vpc|vhdx` in each subformat;
//! our reads must equal `qemu-img convert -f vpc|vhdx -O raw` byte for byte.
//! (`-f` is given because qemu does not probe a fixed VHD: its footer is at
//! the end.) Differencing VHDs and VHDX files with a log to replay are
//! refused with a message saying so.

mod common;

use common::*;
use disk_image::{open_path, DiskError};
use std::path::Path;

/// (label, qemu-img format, output options, file name)
const FORMATS: &[(&str, &str, &[&str], &str)] = &[
    ("vhd dynamic", "vpc", &["-o", "subformat=dynamic"], "d.vhd"),
    ("vhd fixed", "vpc", &["-o", "subformat=fixed"], "d.vhd"),
    (
        "vhd dynamic force_size",
        "vpc",
        &["-o", "subformat=dynamic,force_size=on"],
        "d.vhd",
    ),
    (
        "vhd fixed force_size",
        "vpc",
        &["-o", "subformat=fixed,force_size=on"],
        "d.vhd",
    ),
    ("vhdx dynamic", "vhdx", &[], "d.vhdx"),
    (
        "vhdx dynamic 1M blocks",
        "vhdx",
        &["-o", "block_size=1M"],
        "d.vhdx",
    ),
    (
        "vhdx dynamic 8M blocks 1M log",
        "vhdx",
        &["-o", "block_size=8M,log_size=1M"],
        "d.vhdx",
    ),
    ("vhdx fixed", "vhdx", &["-o", "subformat=fixed"], "d.vhdx"),
];

fn qemu_raw_of(image: &Path, format: &str, dir: &Path) -> Vec<u8> {
    let out = dir.join("qemu-reference.raw");
    qemu_img(&[
        "convert",
        "-f",
        format,
        "-O",
        "raw",
        image.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    let data = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    data
}

fn run_seed(seed: u64, size: usize) {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("source.raw");
    std::fs::write(&raw, random_disk(seed, size)).unwrap();
    for (label, format, opts, file) in FORMATS {
        let sub = dir.path().join(label.replace(' ', "_"));
        std::fs::create_dir(&sub).unwrap();
        let image = sub.join(file);
        let mut args = vec!["convert", "-f", "raw", "-O", format];
        args.extend_from_slice(opts);
        args.push(raw.to_str().unwrap());
        args.push(image.to_str().unwrap());
        qemu_img(&args);
        let want = qemu_raw_of(&image, format, dir.path());
        let src = open_path(&image, &cache(dir.path())).unwrap_or_else(|e| panic!("{label}: {e}"));
        check_matches(src, &want, seed, &format!("{label} (seed {seed})"));
    }
}

#[test]
fn vhd_and_vhdx_match_qemu_img() {
    have_qemu_img();
    // Sizes not a multiple of the block size (nor of a CHS geometry) on purpose.
    run_seed(11, (5 << 20) + 3 * 512);
    run_seed(12, (9 << 20) + 4096);
    run_seed(13, 64 << 10);
}

fn refused(image: &Path, dir: &Path) -> String {
    match open_path(image, &cache(dir)) {
        Ok(_) => panic!("{} opened", image.display()),
        Err(e @ DiskError::Unsupported { .. }) => e.to_string(),
        Err(e) => panic!("{}: not refused as unsupported: {e}", image.display()),
    }
}

#[test]
fn differencing_vhd_is_refused_naming_its_parent() {
    have_qemu_img();
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("d.raw");
    std::fs::write(&raw, random_disk(3, 3 << 20)).unwrap();
    let vhd = dir.path().join("child.vhd");
    qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "vpc",
        raw.to_str().unwrap(),
        vhd.to_str().unwrap(),
    ]);
    // qemu-img cannot write differencing VHDs: turn the dynamic disk into
    // one (disk type 4 in both footers, a parent name in the header).
    let mut bytes = std::fs::read(&vhd).unwrap();
    let len = bytes.len();
    for footer in [0, len - 512] {
        bytes[footer + 60..footer + 64].copy_from_slice(&4u32.to_be_bytes());
    }
    let header = u64::from_be_bytes(bytes[16..24].try_into().unwrap()) as usize;
    for (i, c) in "base.vhd".encode_utf16().enumerate() {
        bytes[header + 64 + 2 * i..header + 66 + 2 * i].copy_from_slice(&c.to_be_bytes());
    }
    std::fs::write(&vhd, bytes).unwrap();
    let msg = refused(&vhd, dir.path());
    assert!(
        msg.contains("differencing disk on parent \"base.vhd\""),
        "{msg}"
    );
}

/// CRC-32C, to re-seal a header after changing it.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0x82f6_3b78 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

#[test]
fn vhdx_with_a_log_to_replay_is_refused() {
    have_qemu_img();
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("d.raw");
    std::fs::write(&raw, random_disk(4, 2 << 20)).unwrap();
    let vhdx = dir.path().join("dirty.vhdx");
    qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "vhdx",
        raw.to_str().unwrap(),
        vhdx.to_str().unwrap(),
    ]);
    // Both headers name a log, as after a crash mid-write.
    let mut bytes = std::fs::read(&vhdx).unwrap();
    for at in [64 << 10, 128 << 10] {
        let h = &mut bytes[at..at + 4096];
        h[48..64].fill(0x5a);
        h[4..8].fill(0);
        let sum = crc32c(h);
        h[4..8].copy_from_slice(&sum.to_le_bytes());
    }
    std::fs::write(&vhdx, bytes).unwrap();
    let msg = refused(&vhdx, dir.path());
    assert!(msg.contains("log holds writes not yet applied"), "{msg}");
}

/// Damaged VHD and VHDX files give errors, never a panic: every header
/// byte flipped in turn (sampled), and the file cut at many lengths.
#[test]
fn damaged_vhd_and_vhdx_are_errors_not_panics() {
    use disk_image::{open_image, BlockSource, MemRange, NoExtents};
    have_qemu_img();
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("d.raw");
    std::fs::write(&raw, random_disk(9, 3 << 20)).unwrap();
    let exercise = |bytes: Vec<u8>| {
        let r = Box::new(MemRange::new(bytes, "damaged"));
        if let Ok(src) = open_image(r, None, &NoExtents, &cache(dir.path())) {
            let cap = src.capacity();
            let mut buf = vec![0u8; 64 << 10];
            for off in [0, cap / 2, cap.saturating_sub(buf.len() as u64)] {
                let n = (cap - off.min(cap)).min(buf.len() as u64) as usize;
                let _ = src.read_at(&mut buf[..n], off);
            }
        }
    };
    for (format, file) in [("vpc", "d.vhd"), ("vhdx", "d.vhdx")] {
        let image = dir.path().join(file);
        qemu_img(&[
            "convert",
            "-f",
            "raw",
            "-O",
            format,
            raw.to_str().unwrap(),
            image.to_str().unwrap(),
        ]);
        let good = std::fs::read(&image).unwrap();
        let mut rng = Rng(17);
        // Structures live in the first MiBs (VHD: footer, header, BAT;
        // VHDX: headers, region tables, metadata, BAT) and at the end.
        for _ in 0..250 {
            let mut bad = good.clone();
            let span = bad.len().min(4 << 20) as u64;
            let at = if rng.below(4) == 0 {
                bad.len() - 1 - rng.below(512) as usize
            } else {
                rng.below(span) as usize
            };
            bad[at] ^= 1 << rng.below(8);
            exercise(bad);
        }
        for cut in (0..good.len()).step_by(good.len() / 97 + 1) {
            exercise(good[..cut].to_vec());
        }
    }
}
