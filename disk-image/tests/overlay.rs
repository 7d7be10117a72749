//! The copy-on-write overlay over a real image file: writes read back,
//! the package file is never changed, a persistent overlay survives a
//! restart, and a process killed mid-writes leaves a usable overlay.

mod common;

use common::*;
use disk_image::overlay::{Overlay, CLUSTER};
use disk_image::{open_path, BlockSource, CacheDir};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

const BLOCK: u64 = 4096;
const DISK: u64 = 8 << 20;

fn sha256(p: &Path) -> String {
    hex(&Sha256::digest(std::fs::read(p).unwrap()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A base image: each 4 KiB block filled with one tagged word.
fn base_word(block: u64) -> u64 {
    0xba5e_0000_0000_0000 | block
}

fn write_base(p: &Path) {
    let mut d = Vec::with_capacity(DISK as usize);
    for b in 0..DISK / BLOCK {
        for _ in 0..BLOCK / 8 {
            d.extend_from_slice(&base_word(b).to_le_bytes());
        }
    }
    std::fs::write(p, d).unwrap();
}

/// Write number `i` goes to this block, with this word.
fn write_plan(i: u64) -> (u64, u64) {
    let mut r = Rng(1000 + i);
    let block = r.below(DISK / BLOCK);
    (block, 0x5717_0000_0000_0000 | (i << 20) | block)
}

fn block_word(src: &dyn BlockSource, block: u64) -> u64 {
    let mut buf = vec![0u8; BLOCK as usize];
    src.read_at(&mut buf, block * BLOCK).unwrap();
    let w = u64::from_le_bytes(buf[..8].try_into().unwrap());
    assert!(
        buf.chunks(8).all(|c| c == w.to_le_bytes()),
        "block {block} is torn"
    );
    w
}

fn open_overlay(dir: &Path, persist: &Path) -> Overlay {
    let base = open_path(&dir.join("base.raw"), &CacheDir::new(dir.join("cache"))).unwrap();
    Overlay::persistent(base, persist, "base.raw:v1").unwrap()
}

#[test]
fn writes_read_back_and_package_is_untouched() {
    have_qemu_img();
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("src.raw");
    let data = random_disk(5, 6 << 20);
    std::fs::write(&raw, &data).unwrap();
    let pkg = dir.path().join("disk.vmdk");
    to_stream_vmdk(&raw, &pkg);
    let before = sha256(&pkg);
    let base = open_path(&pkg, &CacheDir::new(dir.path().join("cache"))).unwrap();
    let o = Arc::new(Overlay::ephemeral(base, &dir.path().join("cache")).unwrap());
    let mut model = data.clone();
    let mut rng = Rng(6);
    for _ in 0..300 {
        let len = 1 + rng.below(200_000) as usize;
        let off = rng.below((model.len() - len) as u64) as usize;
        let fill: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        o.write_at(&fill, off as u64).unwrap();
        model[off..off + len].copy_from_slice(&fill);
    }
    o.flush().unwrap();
    check_matches(o.clone(), &model, 6, "overlay over streamOptimized");
    drop(o);
    assert_eq!(sha256(&pkg), before, "the package file changed");
    // The ephemeral overlay left nothing behind.
    assert_eq!(
        std::fs::read_dir(dir.path().join("cache")).unwrap().count(),
        0
    );
}

#[test]
fn persistent_overlay_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    write_base(&dir.path().join("base.raw"));
    let before = sha256(&dir.path().join("base.raw"));
    let persist = dir.path().join("persist");
    {
        let o = open_overlay(dir.path(), &persist);
        o.write_at(&[7u8; 10], CLUSTER * 3 + 5).unwrap();
        o.write_at(&vec![9u8; 3 * CLUSTER as usize], CLUSTER * 10 - 100)
            .unwrap();
        o.flush().unwrap();
    }
    let o = open_overlay(dir.path(), &persist);
    let mut b = [0u8; 10];
    o.read_at(&mut b, CLUSTER * 3 + 5).unwrap();
    assert_eq!(b, [7u8; 10]);
    let mut big = vec![0u8; 3 * CLUSTER as usize];
    o.read_at(&mut big, CLUSTER * 10 - 100).unwrap();
    assert!(big.iter().all(|&x| x == 9));
    // Untouched parts of written clusters still come from the base.
    assert_eq!(
        block_word(&o, CLUSTER * 3 / BLOCK + 1),
        base_word(CLUSTER * 3 / BLOCK + 1)
    );
    assert_eq!(sha256(&dir.path().join("base.raw")), before);
}

/// Run in a child process by `killed_writer_leaves_usable_overlay`:
/// writes, flushing every few writes and reporting what is durable.
#[test]
#[ignore = "helper run as a child process"]
fn child_writer() {
    let Some(dir) = std::env::var_os("OVERLAY_CHILD_DIR") else {
        return;
    };
    let dir = Path::new(&dir);
    let o = open_overlay(dir, &dir.join("persist"));
    for i in 0.. {
        let (block, word) = write_plan(i);
        let buf: Vec<u8> = std::iter::repeat_n(word.to_le_bytes(), (BLOCK / 8) as usize)
            .flatten()
            .collect();
        o.write_at(&buf, block * BLOCK).unwrap();
        if i % 4 == 3 {
            o.flush().unwrap();
            println!("durable {i}");
        }
    }
}

#[test]
fn killed_writer_leaves_usable_overlay() {
    let dir = tempfile::tempdir().unwrap();
    write_base(&dir.path().join("base.raw"));
    let before = sha256(&dir.path().join("base.raw"));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_writer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("OVERLAY_CHILD_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut durable = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("durable ") {
            durable = Some(n.parse::<u64>().unwrap());
            if durable.unwrap() >= 600 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL, mid-write
    child.wait().unwrap();
    let durable = durable.expect("child reported no durable writes");

    let o = open_overlay(dir.path(), &dir.path().join("persist"));
    // Newest durable write per block.
    let mut newest = std::collections::HashMap::new();
    for i in 0..=durable {
        let (block, _) = write_plan(i);
        newest.insert(block, i);
    }
    for block in 0..DISK / BLOCK {
        let w = block_word(&o, block);
        if w == base_word(block) {
            assert!(
                !newest.contains_key(&block),
                "block {block}: durable write {:?} lost",
                newest.get(&block)
            );
            continue;
        }
        assert_eq!(w >> 48, 0x5717, "block {block} holds garbage {w:#x}");
        assert_eq!(
            w & 0xfffff,
            block,
            "block {block} holds another block's data"
        );
        let i = (w >> 20) & 0xfff_ffff;
        assert_eq!(write_plan(i).0, block);
        if let Some(&n) = newest.get(&block) {
            assert!(
                i >= n,
                "block {block}: write {i} is older than durable write {n}"
            );
        }
    }
    // The overlay is still writable after the crash.
    o.write_at(&[1u8; 512], 0).unwrap();
    o.flush().unwrap();
    assert_eq!(sha256(&dir.path().join("base.raw")), before);
    eprintln!(
        "killed after {durable} durable writes; {} clusters in overlay",
        o.allocated_clusters()
    );
}
