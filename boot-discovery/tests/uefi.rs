//! UEFI-only disks made with the real tools: unified kernel images built
//! from systemd's EFI stub with objcopy (the systemd 252 / Arch wiki
//! recipe), GPT disks with an EFI System Partition (mkfs.vfat + mcopy)
//! holding `EFI/Linux/*.efi` or a GRUB stub `EFI/debian/grub.cfg` that
//! points at an ext4 root, Debian's `grub-install --removable` layout, and
//! hostile variants (truncated or patched images, configfile loops).

mod common;

use boot_discovery::pe::{self, PeError};
use boot_discovery::{describe, discover, DiscoveryError};
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const ROOT_UUID: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
const OSREL: &[u8] = b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n";

fn tools(extra: &[&str]) -> bool {
    ["mkfs.vfat", "mcopy", "sfdisk", "mkfs.ext4"]
        .iter()
        .chain(extra)
        .all(|t| have(t))
}

/// A kernel-looking payload: a bzImage header (`HdrS` at 0x202) and
/// bytes that differ by `seed`, so a wrong slice is noticed.
fn bzimage(seed: u8, len: usize) -> Vec<u8> {
    let mut k: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect();
    k[0x1fe..0x200].copy_from_slice(&[0x55, 0xaa]);
    k[0x202..0x206].copy_from_slice(b"HdrS");
    k
}

/// `objcopy --add-section ... --change-section-vma ...` onto systemd's stub,
/// as the Arch wiki does for systemd 252 (fixed VMAs above the stub's).
fn make_uki(dir: &Path, name: &str, kernel: &[u8], initrd: &[u8], cmdline: &str) -> PathBuf {
    let files = [
        (".osrel", "0x20000", OSREL.to_vec()),
        (".cmdline", "0x30000", format!("{cmdline}\n").into_bytes()),
        (".uname", "0x40000", b"6.1.0-13-amd64".to_vec()),
        (".linux", "0x2000000", kernel.to_vec()),
        (".initrd", "0x3000000", initrd.to_vec()),
    ];
    let mut cmd = Command::new("objcopy");
    for (sec, vma, data) in &files {
        let f = dir.join(format!("{name}{sec}"));
        std::fs::write(&f, data).unwrap();
        cmd.arg("--add-section")
            .arg(format!("{sec}={}", f.display()))
            .arg("--change-section-vma")
            .arg(format!("{sec}={vma}"));
    }
    let out = dir.join(format!("{name}.efi"));
    run(cmd.arg(STUB).arg(&out));
    out
}

fn have_stub() -> bool {
    let ok = Path::new(STUB).exists() && have("objcopy");
    if !ok {
        panic!("{STUB} or objcopy missing: run scripts/setup-deps (systemd-boot-efi binutils)");
    }
    ok
}

#[test]
fn reader_returns_exactly_the_objcopy_sections() {
    if !have_stub() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (k, i) = (bzimage(1, 5000), b"initrd-bytes".repeat(250));
    let uki = std::fs::read(make_uki(tmp.path(), "a", &k, &i, "root=/dev/vda2 ro")).unwrap();
    let secs = pe::sections(&uki, uki.len() as u64).unwrap();
    assert!(secs.iter().any(|s| s.name == ".text"), "{secs:?}");
    let u = pe::uki(&secs).unwrap();
    assert_eq!(pe::slice(&uki, u.linux.as_ref().unwrap()).unwrap(), &k[..]);
    assert_eq!(pe::slice(&uki, u.initrd.as_ref().unwrap()).unwrap(), &i[..]);
    let c = pe::slice(&uki, u.cmdline.as_ref().unwrap()).unwrap();
    assert_eq!(c, b"root=/dev/vda2 ro\n");
    assert_eq!(pe::slice(&uki, u.osrel.as_ref().unwrap()).unwrap(), OSREL);
    assert_eq!(
        pe::slice(&uki, u.uname.as_ref().unwrap()).unwrap(),
        b"6.1.0-13-amd64"
    );
    // The headers alone give the same table.
    let head = pe::headers_len(&uki).unwrap() as usize;
    assert!(head < 4096, "{head}");
    assert_eq!(pe::sections(&uki[..head], uki.len() as u64).unwrap(), secs);
}

/// Offset of the section table entry named `name` in a real image.
fn entry_of(uki: &[u8], name: &str) -> usize {
    let lfanew = u32::from_le_bytes(uki[0x3c..0x40].try_into().unwrap()) as usize;
    let count = u16::from_le_bytes(uki[lfanew + 6..lfanew + 8].try_into().unwrap()) as usize;
    let opt = u16::from_le_bytes(uki[lfanew + 20..lfanew + 22].try_into().unwrap()) as usize;
    let table = lfanew + 24 + opt;
    (0..count)
        .map(|i| table + i * 40)
        .find(|&at| uki[at..at + 8].starts_with(name.as_bytes()))
        .unwrap()
}

#[test]
fn hostile_variants_of_a_real_uki_are_refused() {
    if !have_stub() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let uki = std::fs::read(make_uki(tmp.path(), "a", &bzimage(2, 9000), b"ird", "x")).unwrap();
    let n = uki.len() as u64;
    // Truncated: the .initrd now lies beyond the end.
    let cut = &uki[..uki.len() / 2];
    assert!(matches!(
        pe::sections(cut, cut.len() as u64),
        Err(PeError::OutOfFile { .. })
    ));
    assert!(matches!(
        pe::sections(&uki[..100], n),
        Err(PeError::Truncated { .. })
    ));
    // Huge section count.
    let lfanew = u32::from_le_bytes(uki[0x3c..0x40].try_into().unwrap()) as usize;
    let mut bad = uki.clone();
    bad[lfanew + 6..lfanew + 8].copy_from_slice(&0xfff0u16.to_le_bytes());
    assert_eq!(pe::sections(&bad, n), Err(PeError::TooManySections(0xfff0)));
    // A section pointing past the file.
    let mut bad = uki.clone();
    let at = entry_of(&bad, ".linux");
    bad[at + 20..at + 24].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    assert!(matches!(
        pe::sections(&bad, n),
        Err(PeError::OutOfFile { .. })
    ));
    // .initrd overlapping .linux.
    let mut bad = uki.clone();
    let linux_ptr = bad[entry_of(&uki, ".linux") + 20..][..4].to_vec();
    let at = entry_of(&bad, ".initrd");
    bad[at + 20..at + 24].copy_from_slice(&linux_ptr);
    let secs = pe::sections(&bad, n).unwrap();
    assert!(matches!(pe::uki(&secs), Err(PeError::Overlap(..))));
}

/// A GPT disk: ESP (FAT32, 40 MiB) with `esp` files, and an ext4 root.
fn esp_disk(tmp: &Path, esp: &[(&str, &[u8])], root: &[(&str, &[u8])]) -> PathBuf {
    let esp = fat_image(tmp, "esp", 40, 32, esp);
    let root = ext4_image(tmp, "root", 16, ROOT_UUID, root, &[]);
    let script = format!("label: gpt\nsize=40M, type={ESP_TYPE}\nsize=16M, type=L\n");
    make_disk(tmp, 64, &script, &[(1, &esp), (2, &root)])
}

#[test]
fn ukis_on_an_esp_newest_first_and_loader_conf_default() {
    if !have_stub() || !tools(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (k61, i61) = (bzimage(61, 20_000), b"initrd 6.1".repeat(300));
    let (k510, i510) = (bzimage(10, 15_000), b"initrd 5.10".repeat(200));
    let cmd = format!("root=UUID={ROOT_UUID} ro quiet");
    let new = std::fs::read(make_uki(tmp.path(), "n", &k61, &i61, &cmd)).unwrap();
    let old = std::fs::read(make_uki(tmp.path(), "o", &k510, &i510, "root=/dev/vda2")).unwrap();
    let fstab: &[(&str, &[u8])] = &[("/etc/fstab", b"")];
    let files: Vec<(&str, &[u8])> = vec![
        ("/EFI/Linux/debian-5.10.efi", &old),
        ("/EFI/Linux/debian-6.1.efi", &new),
        ("/EFI/Linux/not-a-uki.efi", b"MZ but nothing else"),
        ("/EFI/systemd/systemd-bootx64.efi", b"MZ"),
    ];
    let disk = esp_disk(tmp.path(), &files, fstab);
    let plan = discover(source(&disk)).unwrap();
    assert_eq!(plan.kernel, k61);
    assert_eq!(plan.initrd.as_deref(), Some(&i61[..]));
    assert_eq!(plan.cmdline, cmd);
    assert_eq!(plan.entry_title, "Debian GNU/Linux 12 (bookworm)");
    assert_eq!(plan.kernel_path, "/EFI/Linux/debian-6.1.efi (.linux)");
    assert_eq!(plan.partition.number, 1);
    let why = plan.reasons.join("\n");
    assert!(why.contains("3 unified kernel image(s)"), "{why}");
    assert!(why.contains("not-a-uki.efi: PE headers end at"), "{why}");
    assert!(
        why.contains("sorts first among the images that are UKIs"),
        "{why}"
    );
    assert!(why.contains(".uname 6.1.0-13-amd64"), "{why}");
    // Describing reads only headers and small sections, same answer.
    let d = describe(source(&disk)).unwrap();
    assert_eq!(
        (d.kernel_size, d.initrd_size),
        (k61.len() as u64, Some(i61.len() as u64))
    );
    assert!(d.kernel.is_empty());
    assert_eq!(d.cmdline, cmd);

    // loader.conf's default glob picks the older image.
    let tmp = tempfile::tempdir().unwrap();
    let mut files = files.clone();
    files.push(("/loader/loader.conf", b"timeout 3\ndefault debian-5.*\n"));
    let disk = esp_disk(tmp.path(), &files, fstab);
    let plan = discover(source(&disk)).unwrap();
    assert_eq!(plan.kernel, k510);
    assert_eq!(plan.cmdline, "root=/dev/vda2");
    assert!(plan
        .reasons
        .join("\n")
        .contains("loader.conf says default debian-5.*"));
}

#[test]
fn broken_newest_uki_is_skipped_for_the_next() {
    if !have_stub() || !tools(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let k = bzimage(3, 8000);
    let good = std::fs::read(make_uki(tmp.path(), "g", &k, b"ird", "ro")).unwrap();
    // Cut inside .linux (objcopy leaves a symbol table after the sections).
    let cut = good[..good.len() / 2].to_vec();
    let disk = esp_disk(
        tmp.path(),
        &[
            ("/EFI/Linux/linux-6.6.efi", &cut),
            ("/EFI/Linux/linux-6.1.efi", &good),
        ],
        &[],
    );
    let plan = discover(source(&disk)).unwrap();
    assert_eq!(plan.kernel, k);
    let why = plan.reasons.join("\n");
    assert!(why.contains("linux-6.6.efi: PE section"), "{why}");
}

const STUB_CFG: &str = "search.fs_uuid aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee root hd0,gpt2 \nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n";

/// A trimmed grub-mkconfig menu as Debian 12 writes it.
fn real_grub_cfg() -> String {
    format!(
        "set default=\"0\"\nif [ -s $prefix/grubenv ]; then\n  load_env\nfi\n\
         insmod part_gpt\ninsmod ext2\nsearch --no-floppy --fs-uuid --set=root {ROOT_UUID}\n\
         menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class os $menuentry_id_option 'gnulinux-simple-{ROOT_UUID}' {{\n\
         \tload_video\n\tinsmod gzio\n\tsearch --no-floppy --fs-uuid --set=root {ROOT_UUID}\n\
         \techo\t'Loading Linux 6.1.0-13-amd64 ...'\n\
         \tlinux\t/boot/vmlinuz-6.1.0-13-amd64 root=UUID={ROOT_UUID} ro  quiet\n\
         \tinitrd\t/boot/initrd.img-6.1.0-13-amd64\n}}\n"
    )
}

#[test]
fn grub_stub_on_esp_is_followed_to_the_ext4_root() {
    if !tools(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let k = bzimage(4, 10_000);
    let cfg = real_grub_cfg();
    let disk = esp_disk(
        tmp.path(),
        &[
            ("/EFI/debian/grub.cfg", STUB_CFG.as_bytes()),
            ("/EFI/debian/shimx64.efi", b"MZ shim"),
            ("/EFI/debian/grubx64.efi", b"MZ grub"),
            ("/EFI/BOOT/BOOTX64.EFI", b"MZ shim"),
        ],
        &[
            ("/etc/fstab", b""),
            ("/boot/grub/grub.cfg", cfg.as_bytes()),
            ("/boot/vmlinuz-6.1.0-13-amd64", &k),
            ("/boot/initrd.img-6.1.0-13-amd64", b"debian initrd"),
        ],
    );
    let plan = discover(source(&disk)).unwrap();
    assert_eq!(plan.kernel, k);
    assert_eq!(plan.initrd.as_deref(), Some(&b"debian initrd"[..]));
    assert_eq!(plan.cmdline, format!("root=UUID={ROOT_UUID} ro quiet"));
    assert_eq!(plan.partition.number, 2);
    let why = plan.reasons.join("\n");
    assert!(
        why.contains("EFI boot loader config: /EFI/debian/grub.cfg on partition 1"),
        "{why}"
    );
    assert!(why.contains("/EFI/debian/grub.cfg is a stub: `configfile (uuid=aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee)/boot/grub/grub.cfg` goes on to /boot/grub/grub.cfg on partition 2"), "{why}");
}

#[test]
fn removable_grub_install_without_esp_config() {
    if !tools(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let k = bzimage(5, 10_000);
    let cfg = real_grub_cfg();
    let disk = esp_disk(
        tmp.path(),
        &[("/EFI/BOOT/BOOTX64.EFI", b"MZ grub with built-in prefix")],
        &[
            ("/boot/grub/grub.cfg", cfg.as_bytes()),
            ("/boot/vmlinuz-6.1.0-13-amd64", &k),
            ("/boot/initrd.img-6.1.0-13-amd64", b"debian initrd"),
        ],
    );
    let plan = discover(source(&disk)).unwrap();
    assert_eq!(plan.kernel, k);
    let why = plan.reasons.join("\n");
    assert!(
        why.contains("boot loader: GRUB 2, /boot/grub/grub.cfg on partition 2"),
        "{why}"
    );
    assert!(!why.contains("EFI boot loader config"), "{why}");
}

#[test]
fn configfile_loops_end_and_fall_back() {
    if !tools(&[]) {
        return;
    }
    // A stub that configfiles itself, and a pair that point at each other.
    let me = b"configfile /EFI/debian/grub.cfg\n";
    let a = b"set prefix=/EFI/b\nconfigfile $prefix/grub.cfg\n";
    let b =
        b"search --no-floppy --fs-uuid --set=root 1234-ABCD\nconfigfile ($root)/EFI/a/grub.cfg\n";
    let tmp = tempfile::tempdir().unwrap();
    let disk = esp_disk(
        tmp.path(),
        &[
            ("/EFI/debian/grub.cfg", me),
            ("/EFI/a/grub.cfg", a),
            ("/EFI/b/grub.cfg", b),
        ],
        &[("/etc/fstab", b"")],
    );
    let Err(DiscoveryError::NothingBootable { report }) = discover(source(&disk)) else {
        panic!("a loop is not bootable")
    };
    assert!(
        report.contains("loops back to a config already read"),
        "{report}"
    );
    assert!(report.contains("/EFI/*/grub.cfg"), "{report}");
    assert!(report.contains("/EFI/Linux/*.efi"), "{report}");

    // The same loop with a real menu on the root: found by the direct search.
    let tmp = tempfile::tempdir().unwrap();
    let k = bzimage(6, 10_000);
    let cfg = real_grub_cfg();
    let disk = esp_disk(
        tmp.path(),
        &[("/EFI/debian/grub.cfg", me)],
        &[
            ("/boot/grub/grub.cfg", cfg.as_bytes()),
            ("/boot/vmlinuz-6.1.0-13-amd64", &k),
            ("/boot/initrd.img-6.1.0-13-amd64", b"i"),
        ],
    );
    let plan = discover(source(&disk)).unwrap();
    assert_eq!(plan.kernel, k);
    assert!(plan
        .reasons
        .join("\n")
        .contains("trying the next GRUB config"));
}

#[test]
fn bls_entry_with_efi_key_boots_the_uki_it_names() {
    if !have_stub() || !tools(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (k, i) = (bzimage(7, 12_000), b"uki initrd".repeat(100));
    let uki = std::fs::read(make_uki(tmp.path(), "u", &k, &i, "root=/dev/vda2 ro")).unwrap();
    let entry = b"title   Debian via efi key\nefi     /EFI/debian/linux-6.1.efi\noptions root=/dev/vda2 ro console=ttyS0\n";
    let disk = esp_disk(
        tmp.path(),
        &[
            ("/loader/entries/debian-uki.conf", entry),
            ("/EFI/debian/linux-6.1.efi", &uki),
        ],
        &[],
    );
    let plan = discover(source(&disk)).unwrap();
    assert_eq!(plan.kernel, k);
    assert_eq!(plan.initrd.as_deref(), Some(&i[..]));
    assert_eq!(plan.cmdline, "root=/dev/vda2 ro console=ttyS0");
    assert_eq!(plan.entry_title, "Debian via efi key");
    let why = plan.reasons.join("\n");
    assert!(
        why.contains("Boot Loader Spec entries on partition 1"),
        "{why}"
    );
    assert!(
        why.contains("options replace the image's .cmdline"),
        "{why}"
    );
}
