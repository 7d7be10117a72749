//! Every committed input of the boot-discovery fuzz targets
//! (`boot-discovery/fuzz/seeds`, `.../regressions`), replayed as the
//! targets do.

#[path = "../../tests/support/fuzz_inputs.rs"]
mod fuzz_inputs;

use block_source::MemorySource;
use boot_discovery::config::{bls, extlinux, grub, grubenv};
use std::path::Path;
use std::sync::Arc;

fn fuzz_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz"))
}

#[test]
fn grub_cfg_inputs() {
    for (_, data) in fuzz_inputs::inputs(fuzz_dir(), "grub_cfg") {
        let menu = grub::read_menu(&String::from_utf8_lossy(&data), &Default::default());
        let _ = grub::choose(&menu, &menu.items);
    }
}

#[test]
fn bls_entry_inputs() {
    for (path, data) in fuzz_inputs::inputs(fuzz_dir(), "bls_entry") {
        let text = String::from_utf8_lossy(&data);
        let entry = bls::parse_entry("fuzz", &text, &Default::default());
        if path.extension().is_some_and(|e| e == "conf") {
            assert!(entry.is_some(), "{}: a real entry", path.display());
        }
    }
}

#[test]
fn extlinux_inputs() {
    for (_, data) in fuzz_inputs::inputs(fuzz_dir(), "extlinux") {
        let _ = extlinux::parse(&String::from_utf8_lossy(&data));
    }
}

#[test]
fn grubenv_lvm_inputs() {
    for (_, data) in fuzz_inputs::inputs(fuzz_dir(), "grubenv_lvm") {
        let _ = grubenv::parse(&data);
        let _ = boot_discovery::lvm::parse_metadata(&String::from_utf8_lossy(&data));
    }
}

#[test]
fn disk_inputs() {
    for (path, data) in fuzz_inputs::inputs(fuzz_dir(), "disk") {
        let disk = Arc::new(MemorySource::new(data, true));
        let described = boot_discovery::describe(disk.clone());
        let discovered = boot_discovery::discover(disk);
        eprintln!(
            "{}: {:?}",
            path.display(),
            discovered.as_ref().map(|p| &p.kernel_path)
        );
        assert_eq!(described.is_ok(), discovered.is_ok(), "{}", path.display());
    }
}

#[test]
fn pe_inputs() {
    use boot_discovery::pe;
    let mut ukis = 0;
    for (path, data) in fuzz_inputs::inputs(fuzz_dir(), "pe") {
        let _ = pe::headers_len(&data);
        let _ = pe::sections(&data, u64::MAX);
        let got = pe::sections(&data, data.len() as u64).and_then(|s| pe::uki(&s));
        if path.parent().is_some_and(|p| p.ends_with("seeds/pe")) {
            let u = got.unwrap_or_else(|e| panic!("{}: a real UKI: {e}", path.display()));
            let linux = pe::slice(&data, u.linux.as_ref().unwrap()).unwrap();
            assert!(!linux.is_empty(), "{}", path.display());
            assert!(
                u.cmdline.is_some() && u.osrel.is_some(),
                "{}",
                path.display()
            );
            ukis += 1;
        }
    }
    assert!(ukis >= 2, "the committed seeds are there");
}

#[test]
fn initramfs_inputs() {
    use boot_discovery::drivers::{facts, kmod_index};
    use boot_discovery::initramfs::{read, Limits};
    let mut read_ok = 0;
    for (path, data) in fuzz_inputs::inputs(fuzz_dir(), "initramfs") {
        let limits = Limits {
            max_inflated: 64 << 20,
            max_entries: 100_000,
            max_kept_file: 1 << 20,
        };
        let got = read(&data, &|_| true, limits);
        if let Ok(ird) = &got {
            let f = facts::gather(ird);
            if let Some(dep) = &f.moddep {
                let _ = kmod_index::modules_dep_bin(dep);
            }
        }
        if path
            .parent()
            .is_some_and(|p| p.ends_with("seeds/initramfs"))
        {
            let ird = got.unwrap_or_else(|e| panic!("{}: a real image: {e}", path.display()));
            assert!(ird.get("conf/modules").is_some(), "{}", path.display());
            read_ok += 1;
        }
    }
    assert!(read_ok >= 7, "the committed seeds are there");
}

#[path = "../fuzz/sparse.rs"]
mod sparse;

#[test]
fn btrfs_inputs() {
    use boot_discovery::fs::{probe, Probe};
    let mut compressed = 0;
    for (path, data) in fuzz_inputs::inputs(fuzz_dir(), "btrfs") {
        sparse::exercise(&data);
        if path.parent().is_some_and(|p| p.ends_with("seeds/btrfs")) {
            // The seeds are real mkfs.btrfs images: they must read.
            let vol = Arc::new(sparse::SparseVolume::decode(&data).unwrap());
            let Probe::Fs(fs) = probe(vol) else {
                panic!("{}: not opened as btrfs", path.display());
            };
            let cfg = fs.read_file("/boot/grub/grub.cfg", 4096).unwrap();
            assert!(
                cfg.is_some_and(|c| c.starts_with(b"menuentry")),
                "{}",
                path.display()
            );
            assert_eq!(
                fs.read_file("/vmlinuz", 100).unwrap().as_deref(),
                Some(&b"kernel\n"[..])
            );
            if let Some(big) = fs.read_file("/boot/big.txt", 1 << 20).unwrap() {
                // `yes 'compressible line' | head -c 20000`, compressed.
                let want = "compressible line\n".repeat(2000);
                assert!(big == want.as_bytes()[..20000], "{}", path.display());
                compressed += 1;
            }
        }
    }
    assert_eq!(compressed, 2, "the zstd and LZO seeds were read");
}
