//! Disk formats inside packages (issue 16): a VHD (fixed and dynamic) and a
//! VHDX made by `qemu-img convert -O vpc|vhdx` export from a package byte
//! for byte as `qemu-img convert -f vpc|vhdx -O raw` gives them; a declared
//! `ovf:format` or capacity the content contradicts is a warning naming
//! both, and the content wins. Host-only: no KVM needed.

use std::path::Path;
use std::process::Command;

const DESCRIPTOR: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References><File ovf:href="{HREF}" ovf:id="file1"/></References>
  <DiskSection><Info>disks</Info>
    <Disk ovf:capacity="{CAPACITY}" ovf:diskId="d1" ovf:fileRef="file1" ovf:format="{FORMAT}"/>
  </DiskSection>
  <VirtualSystem ovf:id="vm"><Info>vm</Info>
    <VirtualHardwareSection><Info>hw</Info>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>256</rasd:VirtualQuantity></Item>
      <Item><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>20</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/d1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#;

const VHD_URI: &str = "http://go.microsoft.com/fwlink/?LinkId=137171";
const VMDK_URI: &str = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized";

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

fn qemu_img(args: &[&str]) {
    let (ok, out) = run(Command::new("qemu-img").args(args));
    assert!(
        ok,
        "qemu-img {args:?} (installed by scripts/setup-deps): {out}"
    );
}

fn write_ovf(dir: &Path, href: &str, capacity: u64, format: &str) {
    let text = DESCRIPTOR
        .replace("{HREF}", href)
        .replace("{CAPACITY}", &capacity.to_string())
        .replace("{FORMAT}", format);
    std::fs::write(dir.join("vm.ovf"), text).unwrap();
}

fn export(dir: &Path) -> (bool, String, Vec<u8>) {
    let out = dir.join("export.raw");
    let _ = std::fs::remove_file(&out);
    let (ok, text) = run(Command::new(env!("CARGO_BIN_EXE_ovf-run"))
        .args(["export-disk", "vm.ovf", "-q", "-o", "export.raw"])
        .current_dir(dir)
        .env("XDG_CACHE_HOME", dir.join("cache")));
    (ok, text, std::fs::read(&out).unwrap_or_default())
}

#[test]
fn vhd_and_vhdx_disks_export_as_qemu_img_reads_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let size = (3 << 20) + 7 * 512;
    let (ok, out) = run(Command::new("sh").current_dir(dir).arg("-ec").arg(format!(
        "head -c {size} /dev/urandom > src.raw; dd if=/dev/zero of=src.raw bs=512 seek=2048 count=1024 conv=notrunc 2>/dev/null"
    )));
    assert!(ok, "{out}");
    let cases: &[(&str, &[&str], &str, &str)] = &[
        ("vpc", &["-o", "subformat=fixed"], "fixed.vhd", VHD_URI),
        ("vpc", &["-o", "subformat=dynamic"], "dynamic.vhd", VHD_URI),
        ("vhdx", &[], "disk.vhdx", "http://www.microsoft.com/vhdx"),
    ];
    for (format, opts, file, uri) in cases {
        let mut args = vec!["convert", "-f", "raw", "-O", format];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["src.raw", file]);
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let (ok, out) = run(Command::new("qemu-img").args(&args).current_dir(dir));
        assert!(ok, "{out}");
        let reference = dir.join(format!("{file}.raw"));
        qemu_img(&[
            "convert",
            "-f",
            format,
            "-O",
            "raw",
            dir.join(file).to_str().unwrap(),
            reference.to_str().unwrap(),
        ]);
        let want = std::fs::read(&reference).unwrap();
        write_ovf(dir, file, want.len() as u64, uri);
        let (ok, out, got) = export(dir);
        assert!(ok, "{file}: {out}");
        assert!(!out.contains("warning"), "{file}: {out}");
        assert!(got == want, "{file}: export differs from qemu-img's raw");
    }
}

#[test]
fn declared_format_and_capacity_the_content_contradicts_are_warnings() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("disk.raw"), &data).unwrap();
    // Raw bytes declared as a 50 GiB streamOptimized VMDK.
    write_ovf(dir, "disk.raw", 50 << 30, VMDK_URI);
    let (ok, out, got) = export(dir);
    assert!(ok, "{out}");
    assert!(
        out.contains("declared as VMDK (ovf:format")
            && out.contains(VMDK_URI)
            && out.contains("the content is raw"),
        "{out}"
    );
    assert!(
        out.contains("capacity of 53687091200 bytes but the raw image holds 1048576"),
        "{out}"
    );
    assert!(got == data);
}
