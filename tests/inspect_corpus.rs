//! `ovf-run inspect --json` and `ovf-run verify` on the shared corpus
//! (`../shared/corpus/ovf`), through the real binary.
//!
//! Every file the corpus index lists is run: negatives (INVALID/NEG in
//! SOURCES.md) must be refused with a message, the others must inspect. A
//! dozen get hand-written expectations read off their descriptors.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn corpus() -> PathBuf {
    let dir = std::env::var_os("OVF_RUN_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"));
    assert!(
        dir.join("ovf/SOURCES.md").is_file(),
        "shared corpus missing at {} (set OVF_RUN_CORPUS)",
        dir.display()
    );
    dir
}

fn ovf_run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ovf-run"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn inspect(rel: &str) -> Value {
    let path = corpus().join(rel);
    let (code, stdout, stderr) = ovf_run(&["inspect", "--json", path.to_str().unwrap()]);
    assert_eq!(code, 0, "inspect {rel} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// (entry name, negative) for every corpus file that is a descriptor or package.
fn corpus_entries() -> Vec<(String, bool)> {
    let sources = std::fs::read_to_string(corpus().join("ovf/SOURCES.md")).unwrap();
    let lines: Vec<&str> = sources.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.strip_prefix("- `ovf/") else {
            continue;
        };
        let name = format!("ovf/{}", &rest[..rest.find('`').unwrap()]);
        let desc = lines.get(i + 1).copied().unwrap_or_default();
        let negative = desc.contains("INVALID") || desc.contains("NEG");
        if [".ovf", ".ova", ".xml"].iter().any(|e| name.ends_with(e)) {
            out.push((name, negative));
        }
    }
    out
}

#[test]
fn every_corpus_package_inspects_or_is_refused_as_marked() {
    let entries = corpus_entries();
    assert!(
        entries.len() > 80,
        "corpus index lists only {} packages",
        entries.len()
    );
    let mut wrong = Vec::new();
    for (name, negative) in &entries {
        let path = corpus().join(name);
        let (code, stdout, stderr) = ovf_run(&["inspect", "--json", path.to_str().unwrap()]);
        match (negative, code) {
            (false, 0) => {
                let v: Value = serde_json::from_str(&stdout).unwrap();
                assert_eq!(v["schema"], "ovf-run.inspect/1");
            }
            (true, 1) => assert!(
                stderr.contains("ovf-run: ") && stderr.len() > 20,
                "{name}: unclear error {stderr:?}"
            ),
            _ => wrong.push(format!(
                "{name} (negative={negative}): exit {code}: {stderr}"
            )),
        }
        assert!(
            !stderr.contains("panicked"),
            "{name} made ovf-run panic: {stderr}"
        );
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn hw(v: &Value, system: usize) -> &Value {
    &v["systems"][system]["hardware"]
}

fn disk_kinds(h: &Value) -> Vec<(String, u64, String)> {
    h["disks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["disk_id"].as_str().unwrap().to_string(),
                d["capacity_bytes"].as_u64().unwrap(),
                d["controller"]["kind"]
                    .as_str()
                    .unwrap_or("none")
                    .to_string(),
            )
        })
        .collect()
}

fn nics(h: &Value) -> Vec<String> {
    h["nics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["network"].as_str().unwrap_or("").to_string())
        .collect()
}

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

#[test]
fn hand_checked_hardware() {
    // Default configuration "large": 8 vCPUs, 8192 MB, three 4 GiB disks.
    let v = inspect("ovf/govmomi/deployment-configs.ovf");
    assert_eq!(v["default_configuration"], "large");
    let h = hw(&v, 0);
    assert_eq!(
        (h["vcpus"].as_u64(), h["memory_bytes"].as_u64()),
        (Some(8), Some(8192 * MIB))
    );
    assert_eq!(disk_kinds(h).len(), 3);
    assert!(disk_kinds(h)
        .iter()
        .all(|d| d.1 == 4 * GIB && d.2 == "scsi"));

    // Cisco IOSv: memory "byte * 2^20", two IDE disks, two E1000 NICs.
    let v = inspect("ovf/cot/iosv.ovf");
    let h = hw(&v, 0);
    assert_eq!(
        (h["vcpus"].as_u64(), h["memory_bytes"].as_u64()),
        (Some(1), Some(384 * MIB))
    );
    assert_eq!(
        disk_kinds(h),
        vec![
            ("vios-adventerprisek9-m.vmdk".into(), GIB, "ide".into()),
            ("flash2".into(), 128 * MIB, "ide".into())
        ]
    );
    assert_eq!(nics(h), ["GigabitEthernet0_0", "GigabitEthernet0_1"]);

    // Cisco CSR1000V: 1 vCPU 4 GiB by default, a CD-ROM image attached read-only, three NICs.
    let v = inspect("ovf/cot/csr1000v.ovf");
    let h = hw(&v, 0);
    assert_eq!(
        (h["vcpus"].as_u64(), h["memory_bytes"].as_u64()),
        (Some(1), Some(4 * GIB))
    );
    assert_eq!(h["cdroms"].as_array().unwrap().len(), 1);
    assert_eq!(nics(h).len(), 3);

    // 2008 xsi:type sections: 1 vCPU, 16 MB, one SCSI disk of 107373568 bytes.
    let v = inspect("ovf/govmomi/external/OVFCerts/ValidCert/Nostalgia.ovf");
    let h = hw(&v, 0);
    assert_eq!(
        (h["vcpus"].as_u64(), h["memory_bytes"].as_u64()),
        (Some(1), Some(16 * MIB))
    );
    assert_eq!(
        disk_kinds(h),
        vec![("vmdisk1".into(), 107373568, "scsi".into())]
    );

    // vCenter export: 3 vCPUs, 777 MB.
    let v = inspect("ovf/virt-manager/test1.ovf");
    let h = hw(&v, 0);
    assert_eq!(
        (h["vcpus"].as_u64(), h["memory_bytes"].as_u64()),
        (Some(3), Some(777 * MIB))
    );
    assert_eq!(
        disk_kinds(h),
        vec![("vmdisk1".into(), 8 * GIB, "scsi".into())]
    );

    // OVF 2.0 collection of two systems with EthernetPortItem and a blank StorageItem disk.
    let v = inspect("ovf/govmomi/virtualsystemcollection.ovf");
    assert_eq!(v["package"]["ovf_version"], "2.x");
    assert_eq!(v["systems"].as_array().unwrap().len(), 2);
    let h = hw(&v, 1);
    assert_eq!(nics(h), ["VS Network"]);
    assert_eq!(h["nics"][0]["mac"], "00-16-8B-DB-00-5F");
    assert_eq!(h["disks"][0]["file_ref"], Value::Null);

    // Elements in no namespace (ovftool 3.5 for SLES): 2 vCPUs, 1 GiB, 16 GiB disk.
    let v = inspect("ovf/govmomi/external/SLES11_SP2_64/SLES11_SP2_64.ovf");
    let h = hw(&v, 0);
    assert_eq!(
        (h["vcpus"].as_u64(), h["memory_bytes"].as_u64()),
        (Some(2), Some(GIB))
    );
    assert_eq!(disk_kinds(h)[0].1, 16 * GIB);

    // A real ovftool OVA: 1 vCPU, 32 MB, IDE disk, E1000 on "nat"; video and VMCI ignored.
    let v = inspect("ovf/govmomi/vapi-testdata/ttylinux-pc_i486-16.1.ova");
    assert_eq!(v["package"]["kind"], "ova");
    let h = hw(&v, 0);
    assert_eq!(
        (h["vcpus"].as_u64(), h["memory_bytes"].as_u64()),
        (Some(1), Some(32 * MIB))
    );
    assert_eq!(
        disk_kinds(h),
        vec![("vmdisk1".into(), 30 * MIB, "ide".into())]
    );
    assert_eq!(nics(h), ["nat"]);
    assert_eq!(h["ignored"].as_array().unwrap().len(), 2);

    // VirtualBox export inside an OVA: SATA disk of 8 GiB, 512 MB.
    let v = inspect("ovf/glance/testserver.ova");
    let h = hw(&v, 0);
    assert_eq!(h["memory_bytes"].as_u64(), Some(512 * MIB));
    assert_eq!(
        disk_kinds(h),
        vec![("vmdisk2".into(), 8 * GIB, "sata".into())]
    );

    // OVF 0.9 namespace: 8192 MB, one SCSI disk of 1 GiB.
    let v = inspect("ovf/cot/v0.9.ovf");
    assert_eq!(v["package"]["ovf_version"], "0.9");
    let h = hw(&v, 0);
    assert_eq!(h["memory_bytes"].as_u64(), Some(8192 * MIB));
    assert_eq!(disk_kinds(h), vec![("vmdisk1".into(), GIB, "scsi".into())]);

    // Ubuntu cloud image: 256 MB, 50 MiB disk; multi-valued VirtualSystemType.
    let v = inspect("ovf/cloud-init/ubuntu-server.ovf");
    let h = hw(&v, 0);
    assert_eq!(h["memory_bytes"].as_u64(), Some(256 * MIB));
    assert_eq!(v["systems"][0]["system_types"].as_array().unwrap().len(), 4);

    // VirtualBox "all storage controllers": the IDE disk boots before the SATA one.
    let v = inspect("ovf/govmomi/external/OVFToolTemplates/OVF/xmltestfiles/LaxMode/Pos/vbox5_all_storage_controllers/vbox5.ovf");
    let kinds: Vec<String> = disk_kinds(hw(&v, 0)).into_iter().map(|d| d.2).collect();
    assert_eq!(kinds, ["ide", "sata"]);

    // oVirt dialect: disk found through its image path, size from ovf:size in GiB.
    let v = inspect("ovf/ovirt-engine/vmOvfData.xml");
    assert_eq!(disk_kinds(hw(&v, 0))[0].1, GIB);
}

#[test]
fn configuration_option_selects_hardware() {
    let path = corpus().join("ovf/govmomi/deployment-configs.ovf");
    let (code, stdout, _) = ovf_run(&[
        "inspect",
        "--json",
        "--configuration",
        "small",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert!(hw(&v, 0)["vcpus"].as_u64().unwrap() < 8);
}

#[test]
fn verify_corpus_packages() {
    // A complete OVA whose manifest matches but whose disk is shorter than
    // ovf:size says: the real size wins, with a warning (as COT warns and
    // virt-v2v ignores ovf:size; docs/package-reading.md).
    let (code, stdout, _) = ovf_run(&[
        "verify",
        corpus()
            .join("ovf/govmomi/vapi-testdata/ttylinux-pc_i486-16.1.ova")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("warning: file 'ttylinux-pc_i486-16.1-disk1.vmdk': ovf:size says 10595840"),
        "{stdout}"
    );
    // The disk the descriptor needs is not in the archive: verify fails naming it.
    let (code, stdout, _) = ovf_run(&[
        "verify",
        corpus()
            .join("ovf/glance/testserver-no-disk.ova")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(stdout.contains("testserver-disk1.vmdk"), "{stdout}");
    // Usage errors exit 2.
    let (code, _, _) = ovf_run(&["verify"]);
    assert_eq!(code, 2);
}
