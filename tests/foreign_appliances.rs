//! Appliances made for other hypervisors boot with plain
//! `ovf-run APPLIANCE.ova` (issue 12), without changing their disks:
//!
//! - `vmware`: a host-only initramfs (initramfs-tools `MODULES=list` with
//!   VMware's drivers only: `lsinitramfs` lists no virtio module) and
//!   `root=/dev/sda1`: ovf-run appends the virtio modules from the
//!   appliance's own `/lib/modules` and boots `root=UUID=`;
//! - `uefi`: GPT with an EFI System Partition and GRUB x86_64-efi only,
//!   `vmw:Config firmware="efi"`;
//! - `btrfs`: root and `/boot` in the btrfs subvolume `@`, zstd-compressed.
//!
//! On the host: what inspect says of each. In one KVM test host job
//! (`tests/foreign/inside.sh`): each boots to its web page, served through
//! `-p`, and powers off on the ACPI power button.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use testbed::{appliance_path, job, scratch_dir, Variant};

fn ova(v: Variant) -> PathBuf {
    appliance_path(v).unwrap_or_else(|e| panic!("{e}"))
}

fn inspect(ova: &Path, cache: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ovf-run"))
        .arg("inspect")
        .arg(ova)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The initramfs the appliance's boot configuration names, as discovery
/// reads it from the package's disk.
fn initrd_of(ova: &Path, cache: &Path) -> Vec<u8> {
    // The test's own cache, never the user's.
    let inflated = disk_image::CacheDir::new(cache.join("inflated"));
    let pkg = ovf_loader::Package::open_with_cache(ova, &inflated).expect("package opens");
    let spec = ovf_loader::machine_spec(&pkg.envelope, None, None).expect("machine");
    let (disk, _) =
        ovf_loader::disks::open_disk_checked(&pkg, &spec.disks[0], &inflated).expect("disk opens");
    let plan = boot_discovery::discover(disk).expect("discovery");
    plan.initrd.expect("an initrd")
}

#[test]
fn inspect_says_what_each_needs() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path();

    let vmware = ova(Variant::Vmware);
    let initrd = cache.join("vmware-initrd.img");
    std::fs::write(&initrd, initrd_of(&vmware, cache)).unwrap();
    let listing = Command::new("lsinitramfs")
        .arg(&initrd)
        .output()
        .expect("lsinitramfs (initramfs-tools-core, scripts/setup-deps)");
    assert!(listing.status.success());
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("vmw_pvscsi.ko"), "a VMware initramfs");
    assert!(
        !listing.contains("virtio"),
        "lsinitramfs lists virtio in the vmware appliance's initramfs"
    );
    let text = inspect(&vmware, cache);
    for line in [
        "virtio_blk: added from the appliance's /lib/modules",
        "virtio_pci: added from the appliance's /lib/modules",
        "virtio_net: added from the appliance's /lib/modules",
        "root device: root=/dev/sda1 -> root=UUID=",
    ] {
        assert!(
            text.contains(line),
            "inspect vmware lacks {line:?}:\n{text}"
        );
    }

    let text = inspect(&ova(Variant::Uefi), cache);
    assert!(text.contains("Firmware:  EFI in the package"), "{text}");
    assert!(
        text.contains("EFI System Partition") || text.contains("vfat"),
        "{text}"
    );
    assert!(
        text.contains("--firmware auto boots the kernel above directly"),
        "{text}"
    );

    let text = inspect(&ova(Variant::Btrfs), cache);
    assert!(text.contains("/@/boot/vmlinuz-"), "{text}");
    assert!(text.contains("btrfs"), "{text}");
    assert!(text.contains("rootflags=subvol=@"), "{text}");
}

#[test]
fn each_boots_to_its_web_page() {
    let dir = scratch_dir("foreign").expect("scratch directory");
    let work = dir.path();
    let args = [
        env!("CARGO_BIN_EXE_ovf-run").to_string(),
        ova(Variant::Vmware).display().to_string(),
        ova(Variant::Uefi).display().to_string(),
        ova(Variant::Btrfs).display().to_string(),
    ];
    let out = job::run_script(
        "tests/foreign/inside.sh",
        work,
        &args,
        Duration::from_secs(2400),
    );
    let files: Vec<String> = ["vmware", "uefi", "btrfs"]
        .iter()
        .flat_map(|v| [format!("{v}.stderr"), format!("{v}.console")])
        .collect();
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    let ctx = job::report(&out, work, &files);
    assert!(
        out.status == 0 && out.stdout.contains("FOREIGN-TEST DONE"),
        "the foreign appliances' test in the test host failed:\n{ctx}"
    );
    for v in ["vmware", "uefi", "btrfs"] {
        for what in ["ready", "page ok", "stop"] {
            let line = format!("FOREIGN-TEST {v} {what}");
            assert!(out.stdout.contains(&line), "missing {line:?}:\n{ctx}");
        }
    }
    eprintln!("{}", out.stdout);
}
