//! `--prop`/`--prop-file` through the binary (issue 14), no VM needed: a
//! required property stops a run with the `--prop` to pass (exit 2), bad
//! values and non-configurable keys are usage errors, and `inspect` shows
//! the final values in text and JSON.

use std::path::Path;
use std::process::Command;

const DESCRIPTOR: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References><File ovf:href="disk.img" ovf:id="file1"/></References>
  <DiskSection><Info>disks</Info>
    <Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="d1" ovf:fileRef="file1"/>
    <Disk ovf:capacity="${data_mib}" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="d2"/>
  </DiskSection>
  <VirtualSystem ovf:id="t"><Info>t</Info>
    <ProductSection><Info>cloud-init</Info>
      <Property ovf:key="instance-id" ovf:type="string" ovf:userConfigurable="true" ovf:value="id-ovf"/>
      <Property ovf:key="hostname" ovf:type="string" ovf:userConfigurable="true" ovf:qualifiers="MinLen(1)"><Label>Host name</Label></Property>
      <Property ovf:key="data_mib" ovf:type="uint32" ovf:userConfigurable="true" ovf:value="8"/>
      <Property ovf:key="fixed" ovf:type="string" ovf:value="locked"/>
    </ProductSection>
    <VirtualHardwareSection ovf:transport="iso"><Info>hw</Info>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>256</rasd:VirtualQuantity></Item>
      <Item><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/d1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>1</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/d2</rasd:HostResource><rasd:InstanceID>5</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>"#;

fn package(dir: &Path) -> String {
    std::fs::write(dir.join("vm.ovf"), DESCRIPTOR).unwrap();
    std::fs::write(dir.join("disk.img"), vec![0u8; 1 << 20]).unwrap();
    dir.join("vm.ovf").display().to_string()
}

fn ovf_run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ovf-run"))
        .args(args)
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("XDG_RUNTIME_DIR", dir.join("run"))
        .env("HOME", dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn runs_stop_on_required_and_bad_properties_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ovf = package(d);
    // --firmware direct: the disk holds no kernel, and this test must stop
    // before any VM exists (auto would start the BIOS).
    let base = [
        "--no-verify",
        "--no-console",
        "--accept-eula",
        "--firmware",
        "direct",
    ];
    let run = |extra: &[&str]| {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        args.push(&ovf);
        ovf_run(d, &args)
    };
    let (code, _, err) = run(&[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("this property has no value yet: pass --prop hostname=VALUE (string, MinLen(1): Host name)"),
        "{err}"
    );
    let (code, _, err) = run(&["--prop", "hostname=web1", "--prop", "fixed=x"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("property 'fixed' is not user-configurable"),
        "{err}"
    );
    let (code, _, err) = run(&["--prop", "hostname=web1", "--prop", "data_mib=-1"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("bad value for property 'data_mib' (uint32)"),
        "{err}"
    );
    let (code, _, err) = run(&["--prop", "nosuch=1"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("the package has no property 'nosuch'"),
        "{err}"
    );
    // With the value given, planning goes on (and stops later: the disk
    // holds no kernel), past every property check.
    let (code, _, err) = run(&["--prop", "hostname=web1"]);
    assert_ne!(code, 2, "{err}");
    assert!(!err.contains("property"), "{err}");
}

#[test]
fn prop_files_are_read_and_their_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ovf = package(d);
    let props = d.join("props.txt");
    std::fs::write(
        &props,
        "# settings\nhostname=web1\ninstance-id='i-42\nsecond line <&>'\ndata_mib=\"64\"\n",
    )
    .unwrap();
    let props = props.display().to_string();
    let (code, out, err) = ovf_run(
        d,
        &[
            "inspect",
            "--json",
            "--prop-file",
            &props,
            "--prop",
            "hostname=web2",
            &ovf,
        ],
    );
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let prop = |key: &str| {
        report["properties"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["full_key"] == key)
            .unwrap()
            .clone()
    };
    assert_eq!(
        prop("hostname")["final_value"],
        "web2",
        "--prop wins over the file"
    );
    assert_eq!(prop("hostname")["source"], "user");
    assert_eq!(prop("instance-id")["final_value"], "i-42\nsecond line <&>");
    assert_eq!(prop("fixed")["source"], "default");
    assert_eq!(report["missing_properties"].as_array().unwrap().len(), 0);
    // ${data_mib} sizes the blank disk.
    let disks = report["systems"][0]["hardware"]["disks"]
        .as_array()
        .unwrap();
    assert_eq!(disks[1]["capacity_bytes"], 64u64 << 20, "{disks:?}");

    let (code, out, _) = ovf_run(d, &["inspect", &ovf]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Required:  this property has no value yet: pass --prop hostname=VALUE"),
        "{out}"
    );

    let bad = d.join("bad.txt");
    std::fs::write(&bad, b"hostname=ok\nuser-data=\xc3\x28\n").unwrap();
    let bad = bad.display().to_string();
    let (code, _, err) = ovf_run(d, &["--no-verify", "--prop-file", &bad, &ovf]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("{bad}:2: not UTF-8")), "{err}");
    let (code, _, err) = ovf_run(d, &["inspect", "--prop-file", &bad, &ovf]);
    assert_eq!(code, 2, "{err}");
}
