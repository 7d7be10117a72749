//! `ovf-run export-disk` and `inspect` on hostile folder packages (issue 15,
//! items 5 and 7): the output may not be one of the package's own files,
//! and a named pipe in place of a disk is refused instead of blocking.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DESCRIPTOR: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References><File ovf:href="disk.img" ovf:id="file1"/></References>
  <DiskSection><Info>disks</Info><Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="d1" ovf:fileRef="file1"/></DiskSection>
  <VirtualSystem ovf:id="t"><Info>t</Info>
    <VirtualHardwareSection><Info>hw</Info>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>256</rasd:VirtualQuantity></Item>
      <Item><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/d1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>"#;

/// Run ovf-run with a deadline; a hang kills it and fails the test.
fn ovf_run(args: &[&str], cache: &Path, deadline: Duration) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ovf-run"))
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ovf-run {args:?} did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn export_refuses_to_overwrite_the_packages_own_disk() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("vm.ovf"), DESCRIPTOR).unwrap();
    let disk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(d.join("disk.img"), &disk).unwrap();
    let ovf = d.join("vm.ovf");
    let limit = Duration::from_secs(60);
    for target in ["disk.img", "./disk.img", "vm.ovf"] {
        let out = d.join(target);
        let (code, text) = ovf_run(
            &[
                "export-disk",
                ovf.to_str().unwrap(),
                "-q",
                "-o",
                out.to_str().unwrap(),
            ],
            d,
            limit,
        );
        assert_eq!(code, 2, "{target}: {text}");
        assert!(
            text.contains("one of the package's own files") || text.contains("is the input"),
            "{text}"
        );
    }
    std::os::unix::fs::symlink(d.join("disk.img"), d.join("alias.img")).unwrap();
    let (code, text) = ovf_run(
        &[
            "export-disk",
            ovf.to_str().unwrap(),
            "-q",
            "-o",
            d.join("alias.img").to_str().unwrap(),
        ],
        d,
        limit,
    );
    assert_eq!(code, 2, "{text}");
    assert_eq!(
        std::fs::read(d.join("disk.img")).unwrap(),
        disk,
        "the package's disk changed"
    );

    let out = d.join("copy.raw");
    let (code, text) = ovf_run(
        &[
            "export-disk",
            ovf.to_str().unwrap(),
            "-q",
            "-o",
            out.to_str().unwrap(),
        ],
        d,
        limit,
    );
    assert_eq!(code, 0, "{text}");
    assert_eq!(std::fs::read(&out).unwrap(), disk);
}

#[test]
fn a_fifo_disk_is_refused_not_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("vm.ovf"), DESCRIPTOR).unwrap();
    let made = Command::new("mkfifo")
        .arg(d.join("disk.img"))
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo");
    let ovf = d.join("vm.ovf");
    let limit = Duration::from_secs(60);
    let (_, text) = ovf_run(&["inspect", ovf.to_str().unwrap()], d, limit);
    assert!(text.contains("named pipe"), "inspect: {text}");
    let out = d.join("out.raw");
    let (code, text) = ovf_run(
        &[
            "export-disk",
            ovf.to_str().unwrap(),
            "-q",
            "-o",
            out.to_str().unwrap(),
        ],
        d,
        limit,
    );
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("named pipe"), "export-disk: {text}");
    let (code, text) = ovf_run(&["verify", ovf.to_str().unwrap()], d, limit);
    assert_ne!(code, 0, "verify: {text}");
}
