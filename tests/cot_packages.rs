//! Packages made by COT, the Common OVF Tool (PyPI `cot`, installed by
//! `scripts/setup-deps` into `~/.cache/ovf-run/cot-venv`). COT writes a
//! SATA controller as ResourceType 20 without a subtype; virt-v2v reads
//! that as SATA, and so must ovf-run: the SATA disk at 0:0 boots before a
//! SCSI data disk (issue 16). Host-only: no KVM needed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A package with one SCSI data disk; COT adds the SATA boot disk.
const BASE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References><File ovf:href="data.img" ovf:id="file1" ovf:size="1048576"/></References>
  <DiskSection><Info>disks</Info><Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="data" ovf:fileRef="file1"/></DiskSection>
  <VirtualSystem ovf:id="vm"><Info>vm</Info>
    <VirtualHardwareSection><Info>hw</Info>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>256</rasd:VirtualQuantity></Item>
      <Item><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>6</rasd:ResourceType><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/data</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#;

/// COT from the venv scripts/setup-deps makes; a missing one fails the test with the reason.
fn cot() -> PathBuf {
    let cache = std::env::var_os("OVF_RUN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/ovf-run")
        });
    let cot = cache.join("cot-venv/bin/cot");
    assert!(
        cot.is_file(),
        "{} is missing: run scripts/setup-deps (it installs COT from PyPI)",
        cot.display()
    );
    cot
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?}: {text}");
    text
}

fn ovf_run(dir: &Path, args: &[&str]) -> String {
    run(Command::new(env!("CARGO_BIN_EXE_ovf-run"))
        .args(args)
        .current_dir(dir)
        .env("XDG_CACHE_HOME", dir.join("cache")))
}

#[test]
fn cot_sata_disk_is_the_boot_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("base.ovf"), BASE).unwrap();
    run(Command::new("sh")
        .current_dir(dir)
        .arg("-ec")
        .arg("head -c 1048576 /dev/urandom > data.img; head -c 2097152 /dev/urandom > boot.img"));
    // COT converts boot.img to a streamOptimized VMDK with qemu-img and adds a
    // SATA controller (ResourceType 20, no subtype) for it at 0:0.
    run(Command::new(cot())
        .current_dir(dir)
        .args(["--force", "add-disk", "boot.img", "base.ovf"])
        .args(["-o", "sata.ova", "-c", "sata", "-a", "0:0"]));
    let descriptor = run(Command::new("tar")
        .current_dir(dir)
        .args(["xOf", "sata.ova", "sata.ovf"]));
    assert!(
        descriptor.contains("<rasd:ResourceType>20</rasd:ResourceType>")
            && !descriptor.contains("ResourceSubType>AHCI"),
        "COT no longer writes SATA as a bare ResourceType 20:\n{descriptor}"
    );

    let json = ovf_run(dir, &["inspect", "--json", "sata.ova"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let disks = &v["systems"][0]["hardware"]["disks"];
    assert_eq!(disks[0]["disk_id"], "boot.vmdk", "{json}");
    assert_eq!(disks[0]["controller"]["kind"], "sata", "{json}");
    assert_eq!(disks[1]["disk_id"], "data", "{json}");
    let text = ovf_run(dir, &["inspect", "sata.ova"]);
    assert!(text.contains("on sata (boot)"), "{text}");
    ovf_run(dir, &["verify", "sata.ova"]);

    // The boot disk exports as the bytes COT was given.
    ovf_run(dir, &["export-disk", "sata.ova", "-q", "-o", "boot.raw"]);
    assert_eq!(
        std::fs::read(dir.join("boot.raw")).unwrap(),
        std::fs::read(dir.join("boot.img")).unwrap()
    );
}

#[test]
fn cot_iso_becomes_a_read_only_cdrom_of_the_plan() {
    use ovf_run::{Appliance, LaunchOptions};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("base.ovf"), BASE).unwrap();
    // An ISO made by the usual tool, with a file whose bytes we know.
    run(Command::new("sh").current_dir(dir).arg("-ec").arg(
        "head -c 1048576 /dev/urandom > data.img; mkdir tools; head -c 300000 /dev/urandom > tools/setup.bin; \
         xorriso -as mkisofs -quiet -V TOOLS -J -R -o tools.iso tools",
    ));
    // COT adds a file ending in .iso as a CD-ROM drive (ResourceType 15).
    run(Command::new(cot()).current_dir(dir).args([
        "--force",
        "add-disk",
        "tools.iso",
        "base.ovf",
        "-o",
        "cd.ova",
    ]));
    let text = ovf_run(dir, &["inspect", "cd.ova"]);
    assert!(
        text.contains("CD/DVD:") && text.contains("read-only CD-ROM"),
        "{text}"
    );

    // The library's cache (overlays, inflated images) in this test's own
    // directory; the other test here gives its children their own.
    std::env::set_var("XDG_CACHE_HOME", dir.join("cache"));
    let app = Appliance::open(&dir.join("cd.ova")).expect("open");
    let mut opts = LaunchOptions::default();
    opts.accept_eula = true;
    opts.skip_verify = true;
    // No kernel on the data disk: name one (not read while planning).
    opts.kernel.kernel = Some(dir.join("no-such-kernel"));
    let plan = app.plan(&opts).expect("plan");
    assert_eq!(plan.disks.len(), 1, "the ISO is not a disk");
    assert_eq!(plan.cdroms.len(), 1, "the ISO is a CD-ROM");
    let iso = std::fs::read(dir.join("tools.iso")).unwrap();
    let cd = &plan.cdroms[0];
    assert_eq!(cd.source.capacity(), iso.len() as u64);
    let mut bytes = vec![0u8; iso.len()];
    cd.source.read_at(&mut bytes, 0).unwrap();
    assert!(bytes == iso, "the CD-ROM reads as the ISO COT was given");
}
