//! An appliance whose disk holds no Linux kernel: `ovf-run --firmware
//! direct` must say what it found on the disk and what is missing, exit
//! non-zero, and do so before any VM exists (so this test needs no KVM).
//! (The default, `--firmware auto`, boots such a disk through SeaBIOS:
//! tests/firmware_boot.rs.)
//!
//! The disk is made with the real tools: an ext4 filesystem (mkfs.ext4, with
//! a file in it but no /boot) in an MBR partition (sfdisk), converted to VMDK
//! streamOptimized by qemu-img, described by the appliance's own OVF template.

use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_package(dir: &Path) -> std::path::PathBuf {
    let raw = dir.join("disk.raw");
    let fs = dir.join("fs.img");
    let content = dir.join("content");
    std::fs::create_dir_all(content.join("etc")).unwrap();
    std::fs::write(content.join("etc/hostname"), "no-kernel\n").unwrap();
    // 64 MiB filesystem at 1 MiB in a 66 MiB disk.
    run(Command::new("truncate").args(["-s", "64M"]).arg(&fs));
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&content)
        .arg(&fs));
    run(Command::new("truncate").args(["-s", "66M"]).arg(&raw));
    run(Command::new("sfdisk").arg("-q").arg(&raw).stdin(
        std::fs::File::open({
            let script = dir.join("layout");
            std::fs::write(
                &script,
                "label: dos\nstart=2048, size=131072, type=83, bootable\n",
            )
            .unwrap();
            script
        })
        .unwrap(),
    ));
    run(Command::new("dd")
        .arg(format!("if={}", fs.display()))
        .arg(format!("of={}", raw.display()))
        .args(["bs=1M", "seek=1", "conv=notrunc", "status=none"]));
    let vmdk = dir.join("disk1.vmdk");
    run(Command::new("qemu-img")
        .args([
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized",
        ])
        .arg(&raw)
        .arg(&vmdk));
    let size = std::fs::metadata(&vmdk).unwrap().len();
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("resources/appliance.ovf.in"),
    )
    .unwrap();
    let properties = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("resources/ovf-properties/test.xml"),
    )
    .unwrap();
    // As scripts/build-appliance fills it for the mbr variant.
    let ovf = template
        .replace("@TRANSPORT@", "")
        .replace("@PRODUCT_INFO@", "Information about the installed software")
        .replace("@PROPERTIES@\n", &properties)
        .replace("@CAPACITY_GIB@", "1")
        .replace("@DATE@", "2026-11-24T00:00:00Z")
        .replace("@DISK_FILE@", "disk1.vmdk")
        .replace("@DISK_FILE_SIZE@", &size.to_string())
        .replace("@NAME@", "no-kernel")
        .replace("@POPULATED_SIZE@", &size.to_string())
        .replace("@VARIANT@", "mbr")
        .replace("@VERSION@", "1.0")
        .replace("@FIRMWARE@", "bios");
    assert!(
        !ovf.contains('@'),
        "a placeholder of the template is not filled:\n{ovf}"
    );
    let path = dir.join("no-kernel.ovf");
    std::fs::write(&path, ovf).unwrap();
    path
}

#[test]
fn disk_without_kernel_is_explained_before_any_vm_starts() {
    let dir = tempfile::tempdir().unwrap();
    let ovf = make_package(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_ovf-run"))
        .args([
            "--accept-eula",
            "--no-verify",
            "--no-console",
            "--firmware",
            "direct",
        ])
        .arg(&ovf)
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ovf-run succeeded:\n{stderr}");
    assert!(
        stderr.contains("no bootable Linux kernel"),
        "says a kernel is missing:\n{stderr}"
    );
    assert!(
        stderr.contains("ext4"),
        "names what it found on the disk:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "no panic:\n{stderr}");
}
