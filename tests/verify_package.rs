//! `ovf-run verify` on packages made here with the system's own tools
//! (tar, openssl), the way ovftool lays them out: descriptor first, then
//! manifest, certificate and disk.

use std::path::{Path, PathBuf};
use std::process::Command;

const DESCRIPTOR: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References><File ovf:href="t-disk1.img" ovf:id="file1" ovf:size="1048576"/></References>
  <DiskSection><Info>disks</Info><Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1" ovf:fileRef="file1"/></DiskSection>
  <VirtualSystem ovf:id="t"><Info>t</Info>
    <EulaSection><Info>license</Info><License>Be nice.</License></EulaSection>
    <VirtualHardwareSection><Info>hw</Info>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>1024</rasd:VirtualQuantity></Item>
      <Item><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>6</rasd:ResourceType><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#;

fn sh(dir: &Path, script: &str) {
    let status = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
}

/// Build `t.ova` (signed, self-signed certificate) in a fresh folder.
fn make_ova(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("t.ovf"), DESCRIPTOR).unwrap();
    sh(
        dir,
        "head -c 1048576 /dev/urandom > t-disk1.img
         printf 'SHA256(t.ovf)= %s\\nSHA256(t-disk1.img)= %s\\n' $(sha256sum t.ovf | cut -d' ' -f1) $(sha256sum t-disk1.img | cut -d' ' -f1) > t.mf
         openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 30 -subj /CN=ovf-run-test 2>/dev/null
         printf 'SHA256(t.mf)= %s\\n' $(openssl dgst -sha256 -sign key.pem t.mf | od -An -v -tx1 | tr -d ' \\n') > t.cert
         cat cert.pem >> t.cert
         tar --format=ustar -cf t.ova t.ovf t.mf t.cert t-disk1.img",
    );
    dir.join("t.ova")
}

fn ovf_run(args: &[&str], cache: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ovf-run"))
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn signed_ova_verifies_and_a_changed_byte_fails_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let ova = make_ova(dir.path());
    let ova_s = ova.to_str().unwrap();

    let (code, out) = ovf_run(&["verify", ova_s], &cache);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("t-disk1.img") && out.contains("Signature: valid"),
        "{out}"
    );
    assert!(out.contains("self-signed"), "{out}");

    // Self-signed is reported, not fatal, unless trust is required.
    let (code, out) = ovf_run(&["verify", "--require-trusted", ova_s], &cache);
    assert_eq!(code, 1, "{out}");
    let cert = dir.path().join("cert.pem");
    let (code, out) = ovf_run(
        &[
            "verify",
            "--require-trusted",
            "--trust",
            cert.to_str().unwrap(),
            ova_s,
        ],
        &cache,
    );
    assert_eq!(code, 0, "{out}");

    // inspect sees the hardware and the EULA.
    let (code, out) = ovf_run(&["inspect", "--json", ova_s], &cache);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["eula"]["present"], true);
    assert_eq!(v["systems"][0]["hardware"]["vcpus"], 2);
    assert_eq!(v["systems"][0]["hardware"]["memory_bytes"], 1u64 << 30);

    // Flip one byte inside the disk member: verify fails and names the disk.
    let bytes = std::fs::read(&ova).unwrap();
    let members = ovf_loader::tar_index::index(bytes.as_slice()).unwrap();
    let disk = members.iter().find(|m| m.name == "t-disk1.img").unwrap();
    let mut bad = bytes.clone();
    bad[(disk.offset + 4242) as usize] ^= 0x40;
    let bad_path = dir.path().join("bad.ova");
    std::fs::write(&bad_path, bad).unwrap();
    let (code, out) = ovf_run(&["verify", bad_path.to_str().unwrap()], &cache);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAILED: t-disk1.img: SHA256 digest does not match"),
        "{out}"
    );

    // A changed manifest breaks the signature.
    let mut bad = bytes.clone();
    let mf = members.iter().find(|m| m.name == "t.mf").unwrap();
    bad[mf.offset as usize + 8] = b'X';
    std::fs::write(&bad_path, bad).unwrap();
    let (code, out) = ovf_run(&["verify", bad_path.to_str().unwrap()], &cache);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("signature over t.mf is not valid"), "{out}");
}

#[test]
fn folder_package_refuses_escaping_and_remote_hrefs() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    for (href, expect) in [
        ("../outside.img", "outside the package"),
        ("https://example.invalid/d.img", "is a URL"),
    ] {
        std::fs::write(
            dir.path().join("x.ovf"),
            DESCRIPTOR.replace("t-disk1.img", href),
        )
        .unwrap();
        let (code, out) = ovf_run(
            &["verify", dir.path().join("x.ovf").to_str().unwrap()],
            &cache,
        );
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(expect), "{out}");
    }
}

/// A signature vouches for its own manifest: a disk listed only in a second,
/// unsigned manifest fails a signed package's verification.
#[test]
fn signed_package_needs_its_disks_in_the_signed_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::write(dir.path().join("t.ovf"), DESCRIPTOR).unwrap();
    sh(
        dir.path(),
        "head -c 1048576 /dev/urandom > t-disk1.img
         printf 'SHA256(t.ovf)= %s\\n' $(sha256sum t.ovf | cut -d' ' -f1) > t.mf
         printf 'SHA256(t-disk1.img)= %s\\n' $(sha256sum t-disk1.img | cut -d' ' -f1) > extra.mf
         openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 30 -subj /CN=ovf-run-test 2>/dev/null
         printf 'SHA256(t.mf)= %s\\n' $(openssl dgst -sha256 -sign key.pem t.mf | od -An -v -tx1 | tr -d ' \\n') > t.cert
         cat cert.pem >> t.cert
         tar --format=ustar -cf t.ova t.ovf t.mf t.cert extra.mf t-disk1.img",
    );
    let (code, out) = ovf_run(
        &["verify", dir.path().join("t.ova").to_str().unwrap()],
        &cache,
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("t-disk1.img: not listed in the signed manifest t.mf"),
        "{out}"
    );
}
