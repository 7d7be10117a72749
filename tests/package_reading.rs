//! Packages as the peers build them (issue 16): Python's `tarfile` and
//! `zipfile` make the archives, the rules of docs/package-reading.md are
//! asserted through the `ovf-run` binary. Host-only: no KVM needed.
//!
//! - every manifest is read (folder: every `*.mf`; OVA: every `.mf` member);
//! - a listed file that mismatches or is absent fails, an uncovered disk fails;
//! - an unlisted descriptor, bad manifest lines and a stale `ovf:size` warn;
//! - zip (stored, deflate), tar.gz, tar.xz and a descriptor in a tar
//!   subfolder read, and export the disk's exact bytes;
//! - a folder argument uses the one `.ovf` inside it;
//! - `--configuration` before the subcommand is honoured.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Two raw disks; `{SIZE1}` is the first disk's declared `ovf:size`.
const DESCRIPTOR: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References>
    <File ovf:href="disk1.img" ovf:id="file1" ovf:size="{SIZE1}"/>
    <File ovf:href="disk2.img" ovf:id="file2" ovf:size="65536"/>
  </References>
  <DiskSection><Info>disks</Info>
    <Disk ovf:capacity="131072" ovf:diskId="d1" ovf:fileRef="file1"/>
    <Disk ovf:capacity="65536" ovf:diskId="d2" ovf:fileRef="file2"/>
  </DiskSection>
  <DeploymentOptionSection><Info>sizes</Info>
    <Configuration ovf:default="true" ovf:id="small"><Label>Small</Label><Description>1 CPU</Description></Configuration>
    <Configuration ovf:id="big"><Label>Big</Label><Description>4 CPUs</Description></Configuration>
  </DeploymentOptionSection>
  <VirtualSystem ovf:id="vm"><Info>vm</Info>
    <VirtualHardwareSection><Info>hw</Info>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
      <Item ovf:configuration="big"><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>4</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>256</rasd:VirtualQuantity></Item>
      <Item><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/d1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>1</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/d2</rasd:HostResource><rasd:InstanceID>5</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#;

const DISK1_LEN: usize = 131072;

fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run a Python snippet (the peers' archive makers) in `dir`.
fn py(dir: &Path, script: &str) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("python3 is installed by scripts/setup-deps");
    assert!(
        out.status.success(),
        "python3 failed: {script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

fn sha256(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// `vm.ovf`, `disk1.img` (random, 128 KiB), `disk2.img` (random, 64 KiB) in `dir`.
fn make_files(dir: &Path, declared_size1: usize) {
    std::fs::write(
        dir.join("vm.ovf"),
        DESCRIPTOR.replace("{SIZE1}", &declared_size1.to_string()),
    )
    .unwrap();
    sh(
        dir,
        "head -c 131072 /dev/urandom > disk1.img; head -c 65536 /dev/urandom > disk2.img",
    );
}

fn mf_line(dir: &Path, name: &str) -> String {
    format!("SHA256({name})= {}\n", sha256(&dir.join(name)))
}

fn str_of(p: &Path) -> &str {
    p.to_str().unwrap()
}

struct Case {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    cache: PathBuf,
}

fn case() -> Case {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pkg");
    std::fs::create_dir(&dir).unwrap();
    let cache = tmp.path().join("cache");
    Case {
        dir,
        cache,
        _tmp: tmp,
    }
}

#[test]
fn folder_package_reads_every_manifest_whatever_its_name() {
    let c = case();
    make_files(&c.dir, DISK1_LEN);
    // Named differently from the descriptor (vm.ovf): still read.
    let mf = format!(
        "{}{}{}",
        mf_line(&c.dir, "vm.ovf"),
        mf_line(&c.dir, "disk1.img"),
        mf_line(&c.dir, "disk2.img")
    );
    std::fs::write(c.dir.join("test.mf"), mf).unwrap();
    let ovf = c.dir.join("vm.ovf");
    let (code, out) = ovf_run(&["verify", str_of(&ovf)], &c.cache);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Manifest: test.mf"), "{out}");

    // Tampered disk: verification fails, naming it.
    sh(
        &c.dir,
        "printf X | dd of=disk2.img bs=1 seek=100 conv=notrunc 2>/dev/null",
    );
    let (code, out) = ovf_run(&["verify", str_of(&ovf)], &c.cache);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("disk2.img: SHA256 digest does not match"),
        "{out}"
    );
    // The folder itself is a package: the one .ovf inside it.
    let (code, out) = ovf_run(&["verify", str_of(&c.dir)], &c.cache);
    assert_eq!(code, 1, "{out}");
    let (code, out) = ovf_run(&["inspect", str_of(&c.dir)], &c.cache);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("descriptor vm.ovf"), "{out}");
    // export-disk checks the disk it exports and leaves nothing behind.
    let target = c.dir.join("out.raw");
    let (code, out) = ovf_run(
        &[
            "export-disk",
            str_of(&ovf),
            "--disk",
            "1",
            "-o",
            str_of(&target),
        ],
        &c.cache,
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("disk2.img"), "{out}");
    assert!(
        !target.exists(),
        "a failed export left {}",
        target.display()
    );
    let (code, out) = ovf_run(
        &[
            "export-disk",
            str_of(&ovf),
            "--disk",
            "1",
            "--no-verify",
            "-o",
            str_of(&target),
        ],
        &c.cache,
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        std::fs::read(&target).unwrap(),
        std::fs::read(c.dir.join("disk2.img")).unwrap()
    );
}

/// A tar made by Python's tarfile of `names` (relative to `dir`).
fn tar(dir: &Path, out: &str, mode: &str, names: &[&str]) {
    py(
        dir,
        &format!(
            "import tarfile\nwith tarfile.open('{out}', 'w{mode}', format=tarfile.USTAR_FORMAT) as t:\n    for n in {names:?}: t.add(n)\n"
        ),
    );
}

#[test]
fn ova_with_one_manifest_per_disk_checks_both() {
    let c = case();
    make_files(&c.dir, DISK1_LEN);
    let d1 = format!(
        "{}{}",
        mf_line(&c.dir, "vm.ovf"),
        mf_line(&c.dir, "disk1.img")
    );
    std::fs::write(c.dir.join("disk1.mf"), d1).unwrap();
    std::fs::write(c.dir.join("disk2.mf"), mf_line(&c.dir, "disk2.img")).unwrap();
    let names = ["vm.ovf", "disk1.mf", "disk1.img", "disk2.mf", "disk2.img"];
    tar(&c.dir, "good.ova", "", &names);
    let (code, out) = ovf_run(&["verify", str_of(&c.dir.join("good.ova"))], &c.cache);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("disk1.mf, disk2.mf"), "{out}");
    assert!(!out.contains("NOT IN MANIFEST"), "{out}");

    // The second manifest's disk is bad.
    std::fs::write(
        c.dir.join("disk2.mf"),
        format!("SHA256(disk2.img)= {}\n", "0".repeat(64)),
    )
    .unwrap();
    tar(&c.dir, "bad.ova", "", &names);
    let (code, out) = ovf_run(&["verify", str_of(&c.dir.join("bad.ova"))], &c.cache);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAILED: disk2.img: SHA256 digest does not match"),
        "{out}"
    );

    // A disk no manifest covers fails; so does a listed file that is absent.
    let uncovered = ["vm.ovf", "disk1.mf", "disk1.img", "disk2.img"];
    tar(&c.dir, "uncovered.ova", "", &uncovered);
    let (code, out) = ovf_run(&["verify", str_of(&c.dir.join("uncovered.ova"))], &c.cache);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("disk2.img: used by the descriptor but not listed in any manifest"),
        "{out}"
    );
    std::fs::write(
        c.dir.join("disk2.mf"),
        format!(
            "{}SHA256(extra.bin)= {}\n",
            mf_line(&c.dir, "disk2.img"),
            "1".repeat(64)
        ),
    )
    .unwrap();
    tar(&c.dir, "absent.ova", "", &names);
    let (code, out) = ovf_run(&["verify", str_of(&c.dir.join("absent.ova"))], &c.cache);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("extra.bin: listed in the manifest but not in the package"),
        "{out}"
    );
}

#[test]
fn tolerated_manifest_lines_and_stale_size_are_warnings() {
    let c = case();
    // ovf:size says 1000 bytes more than the disk has (virt-v2v's test packages do this).
    make_files(&c.dir, DISK1_LEN + 1000);
    // No descriptor line, one line nobody can parse.
    let mf = format!(
        "this line is not a digest\n{}{}",
        mf_line(&c.dir, "disk1.img"),
        mf_line(&c.dir, "disk2.img")
    );
    std::fs::write(c.dir.join("vm.mf"), mf).unwrap();
    tar(
        &c.dir,
        "vm.ova",
        "",
        &["vm.ovf", "vm.mf", "disk1.img", "disk2.img"],
    );
    let ova = c.dir.join("vm.ova");
    let (code, out) = ovf_run(&["verify", str_of(&ova)], &c.cache);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("vm.mf, line 1"), "{out}");
    assert!(
        out.contains("vm.ovf: the descriptor is not listed"),
        "{out}"
    );
    assert!(
        out.contains("ovf:size says 132072 bytes but it is 131072 bytes"),
        "{out}"
    );
    let (code, out) = ovf_run(&["inspect", str_of(&ova)], &c.cache);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("MISSING"), "{out}");
    assert!(out.contains("ovf:size says"), "{out}");
    let target = c.dir.join("d1.raw");
    let (code, out) = ovf_run(
        &["export-disk", str_of(&ova), "-q", "-o", str_of(&target)],
        &c.cache,
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        std::fs::read(&target).unwrap(),
        std::fs::read(c.dir.join("disk1.img")).unwrap()
    );
    // Running gets past verification and opening the disk to boot
    // discovery, which fails (random bytes) before any VM exists.
    let (code, out) = ovf_run(
        &[
            "--accept-eula",
            "--no-console",
            "--firmware",
            "direct",
            str_of(&ova),
        ],
        &c.cache,
    );
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("ovf:size says") && out.contains("no bootable Linux kernel found"),
        "{out}"
    );
    assert!(!out.contains("verification failed"), "{out}");
}

/// Inspect and export both disks from `pkg`; the bytes equal the originals.
fn assert_reads_and_exports(c: &Case, pkg: &Path, originals: &Path, container: &str) {
    let (code, out) = ovf_run(&["inspect", "--json", str_of(pkg)], &c.cache);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["package"]["container"], container, "{out}");
    assert_eq!(v["disks"][0]["file_size"], DISK1_LEN as u64, "{out}");
    let (code, out) = ovf_run(&["verify", str_of(pkg)], &c.cache);
    assert_eq!(code, 0, "{out}");
    for (n, name) in [(0, "disk1.img"), (1, "disk2.img")] {
        let target = c.dir.join(format!("export{n}.raw"));
        let (code, out) = ovf_run(
            &[
                "export-disk",
                str_of(pkg),
                "-q",
                "--disk",
                &n.to_string(),
                "-o",
                str_of(&target),
            ],
            &c.cache,
        );
        assert_eq!(code, 0, "{}: {out}", pkg.display());
        assert_eq!(
            std::fs::read(&target).unwrap(),
            std::fs::read(originals.join(name)).unwrap(),
            "{} disk {n}",
            pkg.display()
        );
        std::fs::remove_file(&target).unwrap();
    }
}

fn write_manifest(dir: &Path) {
    let mf = ["vm.ovf", "disk1.img", "disk2.img"]
        .iter()
        .map(|n| mf_line(dir, n))
        .collect::<String>();
    std::fs::write(dir.join("vm.mf"), mf).unwrap();
}

#[test]
fn zip_and_compressed_tar_packages_read_and_export_exact_bytes() {
    let c = case();
    make_files(&c.dir, DISK1_LEN);
    write_manifest(&c.dir);
    let names = ["vm.ovf", "vm.mf", "disk1.img", "disk2.img"];
    tar(&c.dir, "vm-gz.ova", ":gz", &names);
    tar(&c.dir, "vm-xz.ova", ":xz", &names);
    for (out, method) in [
        ("vm-stored.ova", "ZIP_STORED"),
        ("vm-deflate.ova", "ZIP_DEFLATED"),
    ] {
        py(
            &c.dir,
            &format!(
                "import zipfile\nwith zipfile.ZipFile('{out}', 'w', zipfile.{method}) as z:\n    for n in {names:?}: z.write(n)\n"
            ),
        );
    }
    assert_reads_and_exports(&c, &c.dir.join("vm-gz.ova"), &c.dir, "tar-gzip");
    assert_reads_and_exports(&c, &c.dir.join("vm-xz.ova"), &c.dir, "tar-xz");
    assert_reads_and_exports(&c, &c.dir.join("vm-stored.ova"), &c.dir, "zip");
    assert_reads_and_exports(&c, &c.dir.join("vm-deflate.ova"), &c.dir, "zip");
    let (_, out) = ovf_run(&["inspect", str_of(&c.dir.join("vm-xz.ova"))], &c.cache);
    assert!(out.contains("no random access"), "{out}");
}

#[test]
fn descriptor_in_a_tar_subfolder_finds_its_files_beside_it() {
    let c = case();
    let sub = c.dir.join("subfolder");
    std::fs::create_dir(&sub).unwrap();
    make_files(&sub, DISK1_LEN);
    write_manifest(&sub);
    let names = [
        "subfolder/vm.ovf",
        "subfolder/vm.mf",
        "subfolder/disk1.img",
        "subfolder/disk2.img",
    ];
    tar(&c.dir, "sub.ova", "", &names);
    assert_reads_and_exports(&c, &c.dir.join("sub.ova"), &sub, "tar");
}

#[test]
fn configuration_before_the_subcommand_is_honoured() {
    let c = case();
    make_files(&c.dir, DISK1_LEN);
    let ovf = c.dir.join("vm.ovf");
    let vcpus = |args: &[&str]| {
        let (code, out) = ovf_run(args, &c.cache);
        assert_eq!(code, 0, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["systems"][0]["hardware"]["vcpus"].as_u64().unwrap()
    };
    assert_eq!(vcpus(&["inspect", "--json", str_of(&ovf)]), 1);
    assert_eq!(
        vcpus(&["--configuration", "big", "inspect", "--json", str_of(&ovf)]),
        4
    );
    assert_eq!(
        vcpus(&["inspect", "--configuration", "big", "--json", str_of(&ovf)]),
        4
    );
    let (code, out) = ovf_run(
        &["--configuration", "huge", "inspect", str_of(&ovf)],
        &c.cache,
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("no deployment option is called 'huge'") && out.contains("small, big"),
        "{out}"
    );
}

#[test]
fn unreadable_containers_and_ambiguous_folders_are_refused_clearly() {
    let c = case();
    make_files(&c.dir, DISK1_LEN);
    write_manifest(&c.dir);
    // bzip2 members: zip itself is read, the method is named.
    py(
        &c.dir,
        "import zipfile\nwith zipfile.ZipFile('bz.ova', 'w', zipfile.ZIP_BZIP2) as z:\n    for n in ['vm.ovf', 'disk1.img', 'disk2.img']: z.write(n)\n",
    );
    let (code, out) = ovf_run(&["inspect", str_of(&c.dir.join("bz.ova"))], &c.cache);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("zip member 'vm.ovf'") && out.contains("stored and deflate are"),
        "{out}"
    );
    // A folder with two descriptors names them instead of guessing.
    std::fs::copy(c.dir.join("vm.ovf"), c.dir.join("other.ovf")).unwrap();
    let (code, out) = ovf_run(&["inspect", str_of(&c.dir)], &c.cache);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("several .ovf descriptors (other.ovf, vm.ovf)"),
        "{out}"
    );
}
