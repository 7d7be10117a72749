//! Helpers shared by the integration tests: deterministic random disks,
//! running the real `qemu-img`, and comparing whole and random reads.
#![allow(dead_code)]

use disk_image::{BlockSource, CacheDir};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

/// splitmix64: small, deterministic, good enough for test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A disk of `size` bytes made of 4 KiB blocks that are holes, random
/// bytes, text-like (compressible) runs or a repeated byte, with long
/// holes in between, so every format gets data, holes and zero grains.
pub fn random_disk(seed: u64, size: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut d = vec![0u8; size];
    let words: &[&[u8]] = &[
        b"kernel ",
        b"initrd ",
        b"ovf-run ",
        b"appliance ",
        b"\n",
        b"0000 ",
        b"lorem ipsum ",
    ];
    let mut at = 0usize;
    while at < size {
        let run = (1 + rng.below(48) as usize) * 4096;
        let end = (at + run).min(size);
        match rng.below(8) {
            0..=2 => {} // hole
            3 => d[at..end].iter_mut().for_each(|b| *b = rng.next() as u8),
            4 => d[at..end].fill(rng.next() as u8),
            _ => {
                let mut i = at;
                while i < end {
                    let w = words[rng.below(words.len() as u64) as usize];
                    let n = w.len().min(end - i);
                    d[i..i + n].copy_from_slice(&w[..n]);
                    i += n;
                }
            }
        }
        at = end;
    }
    d
}

pub fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img must be installed (apt-get install qemu-utils)");
    assert!(
        out.status.success(),
        "qemu-img {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `raw` converted by the real qemu-img into a streamOptimized VMDK at `out`.
pub fn to_stream_vmdk(raw: &Path, out: &Path) {
    qemu_img(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "vmdk",
        "-o",
        "subformat=streamOptimized",
        raw.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
}

/// The acceptance tests compare against the real qemu-img: without it
/// they fail with the reason (they never pass by skipping).
pub fn have_qemu_img() -> bool {
    let ok = Command::new("qemu-img")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "qemu-img is needed to check our reads against it: run scripts/setup-deps (apt-get install qemu-utils)"
    );
    ok
}

/// What `qemu-img convert -O raw` makes of `image`.
pub fn qemu_raw(image: &Path, dir: &Path) -> Vec<u8> {
    let out = dir.join("qemu-reference.raw");
    qemu_img(&[
        "convert",
        "-O",
        "raw",
        image.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    let data = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    data
}

pub fn cache(dir: &Path) -> CacheDir {
    CacheDir::new(dir.join("cache"))
}

pub fn read_all(src: &dyn BlockSource) -> Vec<u8> {
    let mut all = vec![0u8; src.capacity() as usize];
    // Odd-sized steps cross grain and cluster boundaries everywhere.
    let step = 3 * 65536 + 4096 + 512;
    let mut at = 0;
    while at < all.len() {
        let n = step.min(all.len() - at);
        src.read_at(&mut all[at..at + n], at as u64).unwrap();
        at += n;
    }
    all
}

/// Whole read equals `want`, then random reads from four threads.
pub fn check_matches(src: Arc<dyn BlockSource>, want: &[u8], seed: u64, what: &str) {
    assert_eq!(src.capacity(), want.len() as u64, "{what}: capacity");
    let got = read_all(&*src);
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b).unwrap();
        panic!("{what}: full read differs from qemu-img first at byte {first}");
    }
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let src = src.clone();
            s.spawn(move || {
                let mut rng = Rng(seed ^ (t << 40));
                for _ in 0..150 {
                    let max = if rng.below(4) == 0 { 300_000 } else { 9000 };
                    let len = 1 + rng.below(max) as usize;
                    let len = len.min(want.len());
                    let off = rng.below((want.len() - len + 1) as u64) as usize;
                    let mut buf = vec![0xccu8; len];
                    src.read_at(&mut buf, off as u64).unwrap();
                    assert!(
                        buf == want[off..off + len],
                        "{what}: random read of {len} at {off} differs"
                    );
                }
            });
        }
    });
    let mut one = [0u8; 1];
    assert!(
        src.read_at(&mut one, want.len() as u64).is_err(),
        "{what}: read past the end must fail"
    );
}
