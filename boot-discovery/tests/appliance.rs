//! Discovery on the test-bed's Debian appliances, when they have been built
//! (`~/.cache/ovf-run/appliances/debian-bookworm-{mbr,gpt}.ova`, or the
//! directory in `OVF_RUN_APPLIANCES`). The VMDK is taken out with `tar` and
//! made raw with `qemu-img convert`, independently of ovf-run's own
//! package and disk code, so only boot discovery is under test here.

use block_source::{check_range, BlockSource};
use boot_discovery::{discover, serial_cmdline};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

struct FileSource(std::fs::File, u64);

impl BlockSource for FileSource {
    fn capacity(&self) -> u64 {
        self.1
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        check_range(self.1, offset, buf.len())?;
        self.0.read_exact_at(buf, offset)
    }
}

fn appliance(variant: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("OVF_RUN_APPLIANCES")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ovf-run/appliances"))
        })?;
    let ova = dir.join(format!("debian-bookworm-{variant}.ova"));
    if !ova.exists() {
        eprintln!(
            "SKIP: {} not built yet (the test-bed builds it)",
            ova.display()
        );
        return None;
    }
    if Command::new("qemu-img").arg("--version").output().is_err() {
        eprintln!("SKIP: qemu-img is not installed (apt-get install qemu-utils)");
        return None;
    }
    Some(ova)
}

fn check(variant: &str) {
    let Some(ova) = appliance(variant) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let st = Command::new("tar")
        .arg("-C")
        .arg(tmp.path())
        .arg("-xf")
        .arg(&ova)
        .args(["--wildcards", "*.vmdk"])
        .status()
        .unwrap();
    assert!(st.success());
    let vmdk = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "vmdk"))
        .unwrap();
    let raw = tmp.path().join("disk.raw");
    let st = Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(&vmdk)
        .arg(&raw)
        .status()
        .unwrap();
    assert!(st.success());
    let f = std::fs::File::open(&raw).unwrap();
    let len = f.metadata().unwrap().len();
    let plan = discover(Arc::new(FileSource(f, len))).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "{variant}: kernel {} ({} bytes), initrd {:?}, cmdline {:?}",
        plan.kernel_path,
        plan.kernel.len(),
        plan.initrd_path,
        plan.cmdline
    );
    eprintln!("{}", plan.reasons.join("\n"));
    eprintln!("serial: {}", serial_cmdline(&plan.cmdline));
    // A bzImage has "HdrS" at 0x202.
    assert_eq!(&plan.kernel[0x202..0x206], b"HdrS", "not a bzImage");
    let initrd = plan
        .initrd
        .as_ref()
        .expect("Debian boots with an initramfs");
    assert!(initrd.len() > 1 << 20);
    assert!(plan.cmdline.contains("root="), "{}", plan.cmdline);
}

#[test]
fn debian_bookworm_mbr_appliance() {
    check("mbr");
}

#[test]
fn debian_bookworm_gpt_appliance() {
    check("gpt");
}
