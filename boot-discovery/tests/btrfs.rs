//! btrfs images made by mkfs.btrfs (btrfs-progs >= 6.7, which
//! `scripts/setup-deps` unpacks into `~/.cache/ovf-run/btrfs-progs`:
//! `--rootdir`, `--subvol`, `--compress`; nothing is mounted): plain,
//! inline and big files, symlinks, a directory big enough for a
//! multi-level tree, zlib/LZO/zstd extents, subvolumes and the default
//! subvolume, a whole-disk `discover`, and damaged metadata.

mod common;

use boot_discovery::fs::{probe, BootFs, BtrfsFs, Probe};
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// mkfs.btrfs a `mib` MiB image from `staging` with extra arguments.
fn image(tmp: &Path, name: &str, mib: u64, staging: &Path, args: &[&str]) -> PathBuf {
    let img = tmp.join(name);
    std::fs::File::create(&img)
        .unwrap()
        .set_len(mib * MIB)
        .unwrap();
    run(Command::new(btrfs_mkfs())
        .args(["-q", "-f", "-n", "4096", "--rootdir"])
        .arg(staging)
        .args(args)
        .arg(&img));
    img
}

fn open(img: &Path) -> Box<dyn BootFs> {
    match probe(source(img)) {
        Probe::Fs(fs) => fs,
        Probe::Broken { detail, .. } => panic!("broken: {detail}"),
        _ => panic!("not recognised"),
    }
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn text(len: usize) -> Vec<u8> {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < len {
        s.push_str(&format!("line {i} of a compressible file\n"));
        i += 1;
    }
    s.truncate(len);
    s.into_bytes()
}

#[test]
fn plain_files_links_and_big_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("root");
    let big = pattern(3 << 20, 7);
    let names: Vec<String> = (0..3000)
        .map(|i| format!("/many/entry-with-a-rather-long-name-{i:05}"))
        .collect();
    let mut files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"m"[..])).collect();
    files.extend([
        ("/boot/vmlinuz-6.1.0-13-amd64", &big[..]),
        ("/etc/hostname", &b"btrfs-host\n"[..]),
        ("/empty", &b""[..]),
    ]);
    stage(
        &st,
        &files,
        &[
            ("/vmlinuz", "boot/vmlinuz-6.1.0-13-amd64"),
            ("/abs", "/etc/hostname"),
            ("/loop", "loop"),
        ],
    );
    let img = image(tmp.path(), "plain.img", 128, &st, &["-L", "rootfs"]);
    let fs = open(&img);
    assert_eq!(fs.kind(), "btrfs");
    assert_eq!(fs.label().as_deref(), Some("rootfs"));
    let blkid = run(Command::new("blkid")
        .args(["-s", "UUID", "-o", "value"])
        .arg(&img));
    assert_eq!(fs.uuid().unwrap(), blkid.trim());
    assert!(
        fs.read_file("/vmlinuz", 4 << 20).unwrap().unwrap() == big,
        "big file differs"
    );
    assert_eq!(
        fs.file_size("/boot/vmlinuz-6.1.0-13-amd64").unwrap(),
        Some(3 << 20)
    );
    assert!(matches!(
        fs.read_file("/vmlinuz", 1000),
        Err(boot_discovery::error::FsError::TooLarge { .. })
    ));
    assert_eq!(fs.read_file("/abs", 100).unwrap().unwrap(), b"btrfs-host\n");
    assert_eq!(fs.read_file("/empty", 100).unwrap().unwrap(), b"");
    assert_eq!(
        fs.read_link("/vmlinuz").unwrap().unwrap(),
        "boot/vmlinuz-6.1.0-13-amd64"
    );
    assert!(
        fs.read_file("/loop", 10).is_err(),
        "a symlink loop is an error"
    );
    assert_eq!(fs.read_file("/nope", 10).unwrap(), None);
    assert_eq!(fs.read_file("/etc/hostname/x", 10).unwrap(), None);
    let mut listed = fs.list_dir("/many").unwrap().unwrap();
    listed.sort();
    assert_eq!(listed.len(), 3000);
    assert_eq!(listed[1234], "entry-with-a-rather-long-name-01234");
    assert_eq!(
        fs.read_file("/many/entry-with-a-rather-long-name-02999", 10)
            .unwrap()
            .unwrap(),
        b"m"
    );
    let mut top = fs.list_dir("/").unwrap().unwrap();
    top.sort();
    assert_eq!(
        top,
        ["abs", "boot", "empty", "etc", "loop", "many", "vmlinuz"]
    );
}

fn compressed(algo: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("root");
    let long = text(1 << 20);
    let small = text(2000);
    let random = pattern(300_000, 3);
    let mixed: Vec<u8> = [text(70_000), pattern(70_000, 9), text(70_000)].concat();
    stage(
        &st,
        &[
            ("/long.txt", &long[..]),
            ("/small.txt", &small[..]),
            ("/random.bin", &random[..]),
            ("/mixed.bin", &mixed[..]),
        ],
        &[],
    );
    let img = image(tmp.path(), "c.img", 128, &st, &["--compress", algo]);
    let dump = run(Command::new(btrfs_mkfs().with_file_name("../bin/btrfs"))
        .args(["inspect-internal", "dump-tree", "-t", "5"])
        .arg(&img));
    let code = match algo {
        "zlib" => "compression 1",
        "lzo" => "compression 2",
        _ => "compression 3",
    };
    assert!(dump.contains(code), "mkfs wrote no {algo} extent:\n{dump}");
    let fs = open(&img);
    for (p, want) in [
        ("/long.txt", &long),
        ("/small.txt", &small),
        ("/random.bin", &random),
        ("/mixed.bin", &mixed),
    ] {
        let got = fs.read_file(p, 4 << 20).unwrap().unwrap();
        assert!(
            got == *want,
            "{algo}: {p} differs ({} vs {} bytes)",
            got.len(),
            want.len()
        );
    }
}

#[test]
fn zlib_extents() {
    compressed("zlib");
}

#[test]
fn lzo_extents() {
    compressed("lzo");
}

#[test]
fn zstd_extents() {
    compressed("zstd");
}

/// CRC-32C of a tree block past its checksum field, as btrfs stores it.
fn fix_csum(block: &mut [u8]) {
    let c = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(&block[32..]);
    block[..4].copy_from_slice(&c.to_le_bytes());
    block[4..32].fill(0);
}

/// The pristine image with one changed block laid over it (no copies of
/// the whole image per case).
struct Patched {
    base: Arc<Vec<u8>>,
    at: usize,
    block: Vec<u8>,
}

impl boot_discovery::BlockSource for Patched {
    fn capacity(&self) -> u64 {
        self.base.len() as u64
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        block_source::check_range(self.capacity(), offset, buf.len())?;
        let o = offset as usize;
        buf.copy_from_slice(&self.base[o..o + buf.len()]);
        let (from, to) = (
            o.max(self.at),
            (o + buf.len()).min(self.at + self.block.len()),
        );
        if from < to {
            buf[from - o..to - o].copy_from_slice(&self.block[from - self.at..to - self.at]);
        }
        Ok(())
    }
}

/// Open and read everything a boot would; only errors may come back.
fn exercise(base: &Arc<Vec<u8>>, at: usize, block: Vec<u8>) -> bool {
    let src = Arc::new(Patched {
        base: base.clone(),
        at,
        block,
    });
    let Ok(fs) = BtrfsFs::open(src) else {
        return false;
    };
    let mut ok = fs.list_dir("/").is_ok();
    for p in [
        "/vmlinuz",
        "/etc/hostname",
        "/many/entry-with-a-rather-long-name-00007",
        "/long.txt",
    ] {
        ok &= fs.read_file(p, 8 << 20).is_ok();
    }
    ok &= fs.list_dir("/many").is_ok();
    let _ = fs.subvolumes();
    let _ = fs.root_prefixes(None);
    ok
}

#[test]
fn damaged_metadata_gives_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("root");
    let names: Vec<String> = (0..400)
        .map(|i| format!("/many/entry-with-a-rather-long-name-{i:05}"))
        .collect();
    let mut files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"m"[..])).collect();
    let long = text(300_000);
    files.extend([("/etc/hostname", &b"h\n"[..]), ("/long.txt", &long[..])]);
    stage(&st, &files, &[("/vmlinuz", "etc/hostname")]);
    let img = image(
        tmp.path(),
        "d.img",
        128,
        &st,
        &["--compress", "lzo", "-m", "single"],
    );
    let pristine = Arc::new(std::fs::read(&img).unwrap());
    assert!(
        exercise(&pristine, 0, Vec::new()),
        "the undamaged image reads"
    );
    let fsid = pristine[0x10020..0x10030].to_vec();
    let blocks: Vec<usize> = (0..pristine.len() / 4096)
        .map(|i| i * 4096)
        .filter(|&o| pristine[o + 0x20..o + 0x30] == fsid[..] && o != 0x10000)
        .collect();
    assert!(blocks.len() >= 5, "tree blocks found: {}", blocks.len());
    let mut failed = 0;
    let mut seed = 0x9e37_79b9u32;
    for &b in &blocks {
        for round in 0..24 {
            let mut img = pristine[b..b + 4096].to_vec();
            // Unchecked flips are caught by the checksum; re-checksummed
            // ones reach the parsers with hostile values.
            for _ in 0..1 + round % 4 {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let at = 32 + (seed >> 8) as usize % (4096 - 32);
                img[at] ^= 1 << (seed % 8);
            }
            if round % 3 != 0 {
                fix_csum(&mut img);
            }
            failed += usize::from(!exercise(&pristine, b, img));
        }
    }
    // The superblock: geometry, chunk array, root pointers.
    for at in [
        0x10090, 0x10094, 0x100a0, 0x10050, 0x10058, 0x100c6, 0x1032b, 0x1033d, 0x10358,
    ] {
        failed += usize::from(!exercise(&pristine, at, vec![pristine[at] ^ 0x5a]));
    }
    assert!(
        failed > blocks.len(),
        "damage was noticed ({failed} failures)"
    );
}

#[path = "../fuzz/sparse.rs"]
mod sparse;

/// Files the Linux kernel wrote (tests/data/make-btrfs-kernel-image.sh):
/// holes, preallocated extents, the kernel's own zlib/LZO/zstd extents.
#[test]
fn kernel_written_holes_prealloc_and_compression() {
    let data = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/btrfs-kernel-written.sparse"
    ))
    .unwrap();
    let vol = Arc::new(sparse::SparseVolume::decode(&data).unwrap());
    let fs = BtrfsFs::open(vol).unwrap();
    assert_eq!(fs.label().as_deref(), Some("kernel-written"));
    assert_eq!(fs.uuid().unwrap(), "0c8f6a1e-44b1-4e25-9a3c-5d7f0b2e6c91");
    let mut holey = vec![0u8; 3 << 20];
    holey[..5000].fill(b'A');
    holey[1 << 20..(1 << 20) + 5000].fill(b'B');
    assert!(
        fs.read_file("/holey", 4 << 20).unwrap().unwrap() == holey,
        "holes"
    );
    let mut pre = vec![0u8; 1 << 20];
    pre[8192..8292].fill(b'C');
    assert!(
        fs.read_file("/prealloc", 4 << 20).unwrap().unwrap() == pre,
        "prealloc"
    );
    for algo in ["zlib", "lzo", "zstd"] {
        let got = fs
            .read_file(&format!("/{algo}.txt"), 1 << 20)
            .unwrap()
            .unwrap();
        assert!(got == text(200_000), "{algo}.txt differs");
        let got = fs
            .read_file(&format!("/{algo}-inline.txt"), 1 << 20)
            .unwrap()
            .unwrap();
        assert!(got == text(2000), "{algo}-inline.txt differs");
    }
}
