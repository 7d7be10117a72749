//! Archives made by the real `cpio`, `gzip`, `zstd`, `xz` and `lz4` tools,
//! checked against `cpio -t`'s listing; damaged and oversized images.

use super::*;
use std::path::Path;
use std::process::{Command, Stdio};

/// Run a tool with `input` on stdin; a missing tool fails the test with
/// its name (scripts/setup-deps installs them).
pub(crate) fn pipe(cmd: &str, args: &[&str], dir: &Path, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd} (install it: scripts/setup-deps): {e}"));
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("tool output");
    writer.join().expect("writer").expect("stdin write");
    assert!(out.status.success(), "{cmd} {args:?} failed");
    out.stdout
}

/// A small root: a module tree, initramfs-tools' conf, a link, and a
/// 300 KiB file so every compressor produces several blocks.
pub(crate) fn make_tree(dir: &Path, files: &[(&str, &[u8])]) {
    for (name, data) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
}

/// `find . | cpio -o -H newc` in `dir`.
pub(crate) fn cpio_of(dir: &Path) -> Vec<u8> {
    let list = Command::new("find")
        .arg(".")
        .current_dir(dir)
        .output()
        .expect("find");
    pipe("cpio", &["-o", "-H", "newc", "--quiet"], dir, &list.stdout)
}

fn cpio_listing(archive: &[u8]) -> Vec<String> {
    let out = pipe("cpio", &["-t", "--quiet"], Path::new("/"), archive);
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| normalise(l).to_string())
        .collect()
}

fn sample() -> (tempfile::TempDir, Vec<u8>) {
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let d = tempfile::tempdir().unwrap();
    make_tree(
        d.path(),
        &[
            ("conf/initramfs.conf", b"MODULES=list\n"),
            ("conf/modules", b"vmw_pvscsi\n"),
            (
                "lib/modules/6.1.0-9-amd64/kernel/drivers/scsi/vmw_pvscsi.ko.xz",
                b"\xfd7zXZ fake",
            ),
            (
                "lib/modules/6.1.0-9-amd64/modules.dep",
                b"kernel/drivers/scsi/vmw_pvscsi.ko.xz:\n",
            ),
            ("usr/bin/big", &big),
        ],
    );
    std::os::unix::fs::symlink("usr/bin", d.path().join("bin")).unwrap();
    let archive = cpio_of(d.path());
    (d, archive)
}

fn keep_conf(name: &str) -> bool {
    name.starts_with("conf/") || name == "usr/bin/big"
}

#[test]
fn every_compression_lists_what_cpio_lists() {
    let (d, archive) = sample();
    let expected = cpio_listing(&archive);
    let big = std::fs::read(d.path().join("usr/bin/big")).unwrap();
    let cases: [(&str, &[&str], Compression); 6] = [
        ("cat", &[], Compression::None),
        ("gzip", &["-9", "-c"], Compression::Gzip),
        ("zstd", &["-q", "-c", "--check"], Compression::Zstd),
        ("xz", &["-c", "--check=crc32"], Compression::Xz),
        ("lz4", &["-l", "-c"], Compression::Lz4Legacy),
        ("lz4", &["-c"], Compression::Lz4Frame),
    ];
    for (tool, args, kind) in cases {
        let image = pipe(tool, args, d.path(), &archive);
        let got = read(&image, &keep_conf, Limits::default())
            .unwrap_or_else(|e| panic!("{tool} {args:?}: {e}"));
        assert_eq!(got.names().collect::<Vec<_>>(), expected, "{tool} {args:?}");
        assert_eq!(got.segments.len(), 1);
        assert_eq!(got.segments[0].compression, kind);
        let len = got.segments[0].len as usize;
        assert!(
            image[len..].iter().all(|&b| b == 0),
            "{tool}: whole stream consumed"
        );
        assert_eq!(got.data("conf/modules"), Some(&b"vmw_pvscsi\n"[..]));
        assert_eq!(got.data("usr/bin/big"), Some(&big[..]));
        assert_eq!(
            got.get("lib/modules/6.1.0-9-amd64/modules.dep")
                .unwrap()
                .data,
            None
        );
        assert!(got.get("bin").is_some_and(|e| !e.is_file() && !e.is_dir()));
    }
}

#[test]
fn concatenated_microcode_then_compressed_archives() {
    let (_d, archive) = sample();
    let ucode_dir = tempfile::tempdir().unwrap();
    make_tree(
        ucode_dir.path(),
        &[("kernel/x86/microcode/GenuineIntel.bin", b"microcode")],
    );
    let ucode = cpio_of(ucode_dir.path());
    let mut expected = cpio_listing(&ucode);
    expected.extend(cpio_listing(&archive));
    expected.extend(cpio_listing(&archive));
    expected.extend(cpio_listing(&archive));
    let mut image = ucode.clone();
    image.extend_from_slice(&[0u8; 1024]);
    image.extend(pipe("gzip", &["-c"], Path::new("/"), &archive));
    image.extend_from_slice(&[0u8; 3]);
    image.extend(pipe("zstd", &["-q", "-c"], Path::new("/"), &archive));
    image.extend(pipe(
        "xz",
        &["-c", "--check=crc32"],
        Path::new("/"),
        &archive,
    ));
    image.extend_from_slice(&[0u8; 512]);
    let got = read(&image, &|_| false, Limits::default()).unwrap();
    assert_eq!(got.names().collect::<Vec<_>>(), expected);
    let kinds: Vec<_> = got.segments.iter().map(|s| s.compression).collect();
    assert_eq!(
        kinds,
        [
            Compression::None,
            Compression::Gzip,
            Compression::Zstd,
            Compression::Xz
        ]
    );
    assert_eq!(got.segments[1].offset, ucode.len() as u64 + 1024);
}

#[test]
fn damaged_images_are_errors() {
    let (_d, archive) = sample();
    let gz = pipe("gzip", &["-c"], Path::new("/"), &archive);
    let cut = &gz[..gz.len() / 2];
    assert!(matches!(
        read(cut, &|_| false, Limits::default()),
        Err(InitramfsError::Decompress { format: "gzip", .. })
    ));
    let mut flipped = gz.clone();
    flipped[gz.len() / 2] ^= 0x55;
    assert!(read(&flipped, &|_| false, Limits::default()).is_err());
    assert!(matches!(
        read(&archive[..archive.len() / 3], &|_| false, Limits::default()),
        Err(InitramfsError::BadCpio { .. })
    ));
    assert!(matches!(
        read(b"hello world", &|_| false, Limits::default()),
        Err(InitramfsError::Unrecognised { offset: 0 })
    ));
    assert!(matches!(
        read(b"BZh91AY&SY", &|_| false, Limits::default()),
        Err(InitramfsError::Unsupported {
            format: "bzip2",
            ..
        })
    ));
    assert_eq!(
        read(&[0u8; 64], &|_| false, Limits::default())
            .unwrap()
            .entries
            .len(),
        0
    );
}

#[test]
fn limits_are_enforced() {
    let (_d, archive) = sample();
    let zst = pipe("zstd", &["-q", "-c"], Path::new("/"), &archive);
    let small = Limits {
        max_inflated: 100_000,
        ..Limits::default()
    };
    assert!(matches!(
        read(&zst, &|_| false, small),
        Err(InitramfsError::TooLarge { limit: 100_000 })
    ));
    assert!(matches!(
        read(&archive, &|_| false, small),
        Err(InitramfsError::TooLarge { limit: 100_000 })
    ));
    let few = Limits {
        max_entries: 3,
        ..Limits::default()
    };
    assert!(matches!(
        read(&zst, &|_| false, few),
        Err(InitramfsError::TooManyEntries { limit: 3 })
    ));
    let tiny_files = Limits {
        max_kept_file: 10,
        ..Limits::default()
    };
    assert!(matches!(
        read(&zst, &keep_conf, tiny_files),
        Err(InitramfsError::FileTooLarge { .. })
    ));
}

#[test]
fn written_archives_read_back_with_cpio() {
    let mut w = cpio::Writer::new();
    w.dir("etc");
    w.dir("etc/modules-load.d");
    w.file("etc/modules-load.d/x.conf", 0o644, b"virtio_blk\n");
    w.file("odd", 0o600, b"abcde");
    let bytes = w.finish();
    assert_eq!(bytes.len() % 512, 0);
    assert_eq!(
        cpio_listing(&bytes),
        [
            "etc",
            "etc/modules-load.d",
            "etc/modules-load.d/x.conf",
            "odd"
        ]
    );
    let back = read(&bytes, &|_| true, Limits::default()).unwrap();
    assert_eq!(back.data("odd"), Some(&b"abcde"[..]));
}
