//! Hostile disks: real images with bytes flipped inside the very structures
//! discovery reads (recorded on a clean run). Discovery may fail, but must
//! not panic, hang or allocate without bound.

mod common;

use block_source::{check_range, BlockSource};
use boot_discovery::discover;
use common::{fat_image, have, run};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A disk image with byte patches, recording what is read.
struct Patched {
    base: Arc<Vec<u8>>,
    patches: HashMap<u64, u8>,
    reads: Mutex<Vec<(u64, usize)>>,
}

impl BlockSource for Patched {
    fn capacity(&self) -> u64 {
        self.base.len() as u64
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        check_range(self.capacity(), offset, buf.len())?;
        buf.copy_from_slice(&self.base[offset as usize..offset as usize + buf.len()]);
        for (&at, &val) in &self.patches {
            if at >= offset && at - offset < buf.len() as u64 {
                buf[(at - offset) as usize] = val;
            }
        }
        if let Ok(mut r) = self.reads.lock() {
            if r.len() < 100_000 {
                r.push((offset, buf.len().min(4096)));
            }
        }
        Ok(())
    }
}

/// xorshift, so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn fuzz(name: &str, image: Vec<u8>, rounds: usize) {
    let base = Arc::new(image);
    let clean = Arc::new(Patched {
        base: base.clone(),
        patches: HashMap::new(),
        reads: Mutex::new(vec![]),
    });
    discover(clean.clone()).unwrap_or_else(|e| panic!("{name}: clean image must boot: {e}"));
    let reads = clean.reads.lock().unwrap().clone();
    let mut rng = Rng(0x9e3779b97f4a7c15 ^ base.len() as u64);
    let mut failures = 0;
    for _ in 0..rounds {
        let mut patches = HashMap::new();
        for _ in 0..1 + rng.next() % 8 {
            let (off, len) = reads[(rng.next() % reads.len() as u64) as usize];
            let at = off + rng.next() % len.max(1) as u64;
            let val = match rng.next() % 4 {
                0 => 0xff,
                1 => 0,
                _ => rng.next() as u8,
            };
            patches.insert(at, val);
        }
        let src = Arc::new(Patched {
            base: base.clone(),
            patches,
            reads: Mutex::new(vec![]),
        });
        if discover(src).is_err() {
            failures += 1;
        }
    }
    eprintln!("{name}: {rounds} corrupted variants, {failures} refused, none panicked");
}

fn staged(tmp: &Path) -> std::path::PathBuf {
    let d = tmp.join("root");
    std::fs::create_dir_all(d.join("boot/grub")).unwrap();
    std::fs::create_dir_all(d.join("etc")).unwrap();
    std::fs::write(
        d.join("boot/grub/grub.cfg"),
        include_str!("data/debian-bookworm-grub.cfg"),
    )
    .unwrap();
    std::fs::write(d.join("boot/vmlinuz-6.1.0-13-amd64"), vec![7u8; 200_000]).unwrap();
    std::fs::write(d.join("boot/initrd.img-6.1.0-13-amd64"), b"initrd").unwrap();
    for i in 0..100 {
        std::fs::write(d.join(format!("boot/config-{i}-with-a-longer-name")), b"x").unwrap();
    }
    std::fs::write(d.join("etc/fstab"), b"").unwrap();
    std::os::unix::fs::symlink("boot/vmlinuz-6.1.0-13-amd64", d.join("vmlinuz")).unwrap();
    d
}

#[test]
fn corrupted_gpt_ext4_never_panics() {
    if !have("mkfs.ext4") || !have("sfdisk") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = staged(tmp.path());
    let fs = tmp.path().join("fs.img");
    run(Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-U",
            "6f0b8f1e-5e2a-4b3c-9d8e-7f6a5b4c3d2e",
            "-d",
        ])
        .arg(&root)
        .arg(&fs)
        .arg("8M"));
    let disk = tmp.path().join("disk.img");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(12 << 20)
        .unwrap();
    let mut sf = Command::new("sfdisk")
        .arg("-q")
        .arg(&disk)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        sf.stdin.as_mut().unwrap(),
        b"label: gpt\nstart=2048, size=8M, type=L\n",
    )
    .unwrap();
    assert!(sf.wait().unwrap().success());
    let mut img = std::fs::read(&disk).unwrap();
    let f = std::fs::read(&fs).unwrap();
    img[1 << 20..(1 << 20) + f.len()].copy_from_slice(&f);
    fuzz("gpt+ext4", img, 1000);
}

#[test]
fn corrupted_xfs_never_panics() {
    if !have("mkfs.xfs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = staged(tmp.path());
    let img = tmp.path().join("xfs.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    // Without CRCs (-m crc=0, a v4 filesystem) so flipped bytes reach the parsers.
    let proto = tmp.path().join("proto");
    let r = |p: &str| root.join(p).display().to_string();
    let mut p = format!("/dev/null\n0 0\nd--755 0 0\nboot d--755 0 0\ngrub d--755 0 0\ngrub.cfg ---644 0 0 {}\n$\nvmlinuz-6.1.0-13-amd64 ---644 0 0 {}\ninitrd.img-6.1.0-13-amd64 ---644 0 0 {}\n", r("boot/grub/grub.cfg"), r("boot/vmlinuz-6.1.0-13-amd64"), r("boot/initrd.img-6.1.0-13-amd64"));
    for i in 0..100 {
        p.push_str(&format!(
            "config-{i}-with-a-longer-name ---644 0 0 {}\n",
            r("etc/fstab")
        ));
    }
    p.push_str("$\nvmlinuz l--777 0 0 boot/vmlinuz-6.1.0-13-amd64\n$\n");
    std::fs::write(&proto, p).unwrap();
    run(Command::new("mkfs.xfs")
        .args(["-q", "-m", "crc=0", "-p"])
        .arg(&proto)
        .arg(&img));
    fuzz("xfs v4", std::fs::read(&img).unwrap(), 1000);
}

/// Mangled boot configurations: truncated at every point, and with random
/// bytes replaced. The parsers must always return.
#[test]
fn mangled_configs_never_panic() {
    use boot_discovery::config::{bls, extlinux, grub, grubenv};
    let grub_cfg = include_str!("data/debian-bookworm-grub-saved.cfg");
    let env = grubenv::parse(include_bytes!("data/debian-grubenv"));
    let bls_entry = "title T\nversion 1.2\nlinux /vmlinuz\ninitrd /i\noptions $kernelopts ${x} $\n";
    let ext = include_str!("data/extlinux.conf");
    let try_all = |text: &str| {
        let m = grub::read_menu(text, &env);
        let _ = grub::choose(&m, &m.items);
        let _ = bls::parse_entry("id", text, &env);
        let _ = extlinux::parse(text);
        let _ = grubenv::parse(text.as_bytes());
        let _ = boot_discovery::lvm::parse_metadata(text);
    };
    for src in [grub_cfg, bls_entry, ext] {
        for cut in (0..src.len()).step_by(7) {
            if src.is_char_boundary(cut) {
                try_all(&src[..cut]);
            }
        }
        let mut rng = Rng(42);
        let specials = b"{}[]'\"$\\;\n#=><-";
        for _ in 0..300 {
            let mut b = src.as_bytes().to_vec();
            for _ in 0..1 + rng.next() % 6 {
                let at = (rng.next() % b.len() as u64) as usize;
                b[at] = specials[(rng.next() % specials.len() as u64) as usize];
            }
            try_all(&String::from_utf8_lossy(&b));
        }
    }
}

#[test]
fn corrupted_fat16_never_panics() {
    if !have("mkfs.vfat") || !have("mcopy") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let k = vec![7u8; 100_000];
    let cfg = b"DEFAULT a\nLABEL a\n KERNEL /boot/vmlinuz-with-a-long-name\n APPEND initrd=/boot/initrd.img ro\n";
    let names: Vec<String> = (0..60)
        .map(|i| format!("/boot/Long Name Entry {i}.cfg"))
        .collect();
    let mut files: Vec<(&str, &[u8])> = vec![
        ("/syslinux.cfg", cfg),
        ("/boot/vmlinuz-with-a-long-name", &k),
        ("/boot/initrd.img", b"i"),
    ];
    files.extend(names.iter().map(|n| (n.as_str(), &b"x"[..])));
    let img = fat_image(tmp.path(), "fat", 32, 16, &files);
    fuzz("fat16", std::fs::read(&img).unwrap(), 1000);
}
