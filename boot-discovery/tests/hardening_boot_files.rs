//! Huge declared kernels and initrds (issue 15, item 3): `describe` (what
//! `inspect` uses) looks up sizes only, and both paths refuse files over the
//! caps before reading them. Memory is measured in the test.

mod common;

#[path = "../../tests/support/peak_alloc.rs"]
mod peak_alloc;

use boot_discovery::{describe, discover, MAX_INITRD, MAX_KERNEL};
use common::{have, run, source, MIB};
use peak_alloc::measure;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An ext4 image whose `/vmlinuz` and `/initrd.img` are sparse files of
/// the given sizes (the image itself stays a few MiB).
fn image_with(tmp: &Path, kernel: u64, initrd: u64) -> PathBuf {
    assert!(
        have("mkfs.ext4"),
        "this test needs mkfs.ext4 (apt-get install e2fsprogs)"
    );
    let dir = tmp.join("stage");
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::write(dir.join("etc/fstab"), b"").unwrap();
    for (name, size) in [("vmlinuz", kernel), ("initrd.img", initrd)] {
        let f = std::fs::File::create(dir.join(name)).unwrap();
        f.set_len(size).unwrap();
    }
    let img = tmp.join("disk.img");
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&dir)
        .arg(&img)
        .arg("32M"));
    img
}

#[test]
fn describe_of_large_boot_files_reads_none_of_them() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image_with(tmp.path(), MAX_KERNEL - MIB, MAX_INITRD - MIB);
    let (plan, cost) = measure(|| describe(source(&img)));
    let plan = plan.unwrap_or_else(|e| panic!("{e}"));
    eprintln!("describe: {cost:?}\n{}", plan.summary());
    assert_eq!(plan.kernel_size, MAX_KERNEL - MIB);
    assert_eq!(plan.initrd_size, Some(MAX_INITRD - MIB));
    assert!(plan.kernel.is_empty());
    assert!(
        cost.peak_bytes < 64 * MIB as usize,
        "describe used {} MiB",
        cost.peak_bytes >> 20
    );
}

#[test]
fn kernel_and_initrd_over_the_caps_are_refused_before_reading() {
    let tmp = tempfile::tempdir().unwrap();
    // What the hostile package declared: a 250 MiB vmlinuz, a 1000 MiB initrd.
    let img = image_with(tmp.path(), 250 * MIB, 1000 * MIB);
    for (what, result) in [
        ("describe", measure(|| describe(source(&img)).map(|_| ()))),
        ("discover", measure(|| discover(source(&img)).map(|_| ()))),
    ] {
        let (result, cost) = result;
        let err = result
            .expect_err("a 250 MiB kernel must be refused")
            .to_string();
        eprintln!("{what}: {cost:?}: {err}");
        assert!(err.contains("vmlinuz is 262144000 bytes"), "{what}: {err}");
        assert!(
            cost.peak_bytes < 64 * MIB as usize,
            "{what} used {} MiB",
            cost.peak_bytes >> 20
        );
    }
    let img = image_with(&tmp.path().join("b"), MIB, 1000 * MIB);
    let err = describe(source(&img)).unwrap_err().to_string();
    assert!(err.contains("initrd.img is 1048576000 bytes"), "{err}");
}
