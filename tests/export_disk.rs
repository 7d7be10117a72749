//! `ovf-run export-disk PKG --disk N -o FILE` on the test appliance: the
//! output equals `qemu-img convert -O raw` of the VMDK taken out of the
//! `.ova` with `tar`, byte for byte, and is sparse.

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use testbed::appliance::{appliance_path, Variant};

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn export_disk_equals_qemu_img_and_is_sparse() {
    let ova = appliance_path(Variant::Mbr).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.raw");
    let (ok, out) = run(Command::new(env!("CARGO_BIN_EXE_ovf-run"))
        .args(["export-disk", ova.to_str().unwrap(), "--disk", "0", "-o"])
        .arg(&ours)
        .env("XDG_CACHE_HOME", dir.path()));
    assert!(ok, "{out}");

    let (ok, out) = run(Command::new("tar")
        .arg("xf")
        .arg(&ova)
        .arg("-C")
        .arg(dir.path())
        .arg("--wildcards")
        .arg("*.vmdk"));
    assert!(ok, "tar: {out}");
    let vmdk = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "vmdk"))
        .expect("a .vmdk member");
    let reference = dir.path().join("qemu.raw");
    let (ok, out) = run(Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(&vmdk)
        .arg(&reference));
    assert!(ok, "qemu-img: {out}");
    let (same, out) = run(Command::new("cmp").arg(&ours).arg(&reference));
    assert!(same, "export differs from qemu-img convert -O raw: {out}");

    let meta = std::fs::metadata(&ours).unwrap();
    assert!(
        meta.blocks() * 512 < meta.len() / 2,
        "not sparse: {} bytes allocated for {}",
        meta.blocks() * 512,
        meta.len()
    );

    // A disk that does not exist is a usage error naming the count.
    let (ok, out) = run(Command::new(env!("CARGO_BIN_EXE_ovf-run"))
        .args(["export-disk", ova.to_str().unwrap(), "--disk", "7", "-o"])
        .arg(dir.path().join("none.raw"))
        .env("XDG_CACHE_HOME", dir.path()));
    assert!(!ok && out.contains("there is no disk 7"), "{out}");
}
