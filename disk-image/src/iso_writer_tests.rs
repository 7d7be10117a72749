//! The image read back by the real tools: `isoinfo` (genisoimage) lists
//! and extracts it through plain ISO 9660, Joliet and Rock Ridge, and
//! `xorriso` extracts it; both must return the bytes byte for byte.

use super::*;
use std::path::Path;
use std::process::Command;

fn tool(name: &str, package: &str) -> Command {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{name} is needed to read the ISO image back: run scripts/setup-deps (apt-get install {package})"
    );
    Command::new(name)
}

fn run(mut cmd: Command) -> Vec<u8> {
    let out = cmd.output().expect("run tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn env_xml() -> Vec<u8> {
    let mut v = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Environment xmlns=\"http://schemas.dmtf.org/ovf/environment/1\"/>\n".to_vec();
    // more than one block, and not a whole number of blocks
    v.extend((0..5000u32).map(|i| b'a' + (i % 26) as u8));
    v
}

fn write_image(dir: &Path, files: &[IsoFile]) -> std::path::PathBuf {
    let img = build_iso("OVF ENV", files).expect("build");
    assert_eq!(img.len() % BLOCK_SIZE, 0);
    let path = dir.join("env.iso");
    std::fs::write(&path, img).unwrap();
    path
}

#[test]
fn isoinfo_lists_and_extracts_every_view_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let xml = env_xml();
    let files = [
        IsoFile {
            name: "ovf-env.xml".into(),
            contents: xml.clone(),
        },
        IsoFile {
            name: "empty".into(),
            contents: vec![],
        },
    ];
    let iso = write_image(dir.path(), &files);

    let mut d = tool("isoinfo", "genisoimage");
    d.args(["-d", "-i"]).arg(&iso);
    let info = String::from_utf8(run(d)).unwrap();
    assert!(info.contains("Volume id: OVF ENV"), "{info}");
    assert!(info.contains("Joliet"), "{info}");
    assert!(info.contains("Rock Ridge"), "{info}");

    let mut l = tool("isoinfo", "genisoimage");
    l.args(["-l", "-i"]).arg(&iso);
    let plain = String::from_utf8(run(l)).unwrap();
    assert!(plain.contains("OVF_ENV.XML;1"), "{plain}");

    for (view, name) in [("-J", "/ovf-env.xml"), ("-R", "/ovf-env.xml")] {
        let mut l = tool("isoinfo", "genisoimage");
        l.args([view, "-l", "-i"]).arg(&iso);
        let listing = String::from_utf8(run(l)).unwrap();
        assert!(listing.contains("ovf-env.xml"), "{view}: {listing}");
        assert!(listing.contains("empty"), "{view}: {listing}");
        let mut x = tool("isoinfo", "genisoimage");
        x.args([view, "-i"]).arg(&iso).args(["-x", name]);
        assert_eq!(run(x), xml, "isoinfo {view} -x {name}");
    }
    let mut x = tool("isoinfo", "genisoimage");
    x.arg("-i").arg(&iso).args(["-x", "/OVF_ENV.XML;1"]);
    assert_eq!(run(x), xml, "plain ISO 9660 name");
}

#[test]
fn xorriso_lists_and_extracts_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let xml = env_xml();
    let iso = write_image(
        dir.path(),
        &[IsoFile {
            name: "ovf-env.xml".into(),
            contents: xml.clone(),
        }],
    );
    let mut ls = tool("xorriso", "xorriso");
    ls.arg("-indev").arg(&iso).args(["-ls", "/"]);
    let listing = String::from_utf8(run(ls)).unwrap();
    assert!(listing.contains("'ovf-env.xml'"), "{listing}");

    let out = dir.path().join("extracted.xml");
    let mut x = tool("xorriso", "xorriso");
    x.args(["-osirrox", "on", "-indev"])
        .arg(&iso)
        .args(["-extract", "/ovf-env.xml"])
        .arg(&out);
    run(x);
    assert_eq!(std::fs::read(&out).unwrap(), xml);
}

#[test]
fn bad_names_labels_and_sizes_are_refused() {
    let file = |name: &str| IsoFile {
        name: name.into(),
        contents: b"x".to_vec(),
    };
    for name in ["", ".", "..", "a/b", "a\nb", "nul\0", &"x".repeat(65)] {
        assert!(
            matches!(
                build_iso("OVF ENV", &[file(name)]),
                Err(IsoWriteError::BadName { .. })
            ),
            "{name:?}"
        );
    }
    assert!(matches!(
        build_iso("OVF ENV", &[file("a.txt"), file("A.TXT")]),
        Err(IsoWriteError::DuplicateName { .. })
    ));
    for label in ["", "lower", &"X".repeat(33), "SLASH/"] {
        assert!(
            matches!(
                build_iso(label, &[file("a")]),
                Err(IsoWriteError::BadLabel { .. })
            ),
            "{label:?}"
        );
    }
    let big = IsoFile {
        name: "big".into(),
        contents: vec![0; MAX_TOTAL_BYTES + 1],
    };
    assert!(matches!(
        build_iso("OVF ENV", &[big]),
        Err(IsoWriteError::TooLarge { .. })
    ));
}

#[test]
fn an_image_without_files_is_still_valid() {
    let img = build_iso("EMPTY", &[]).unwrap();
    // primary volume descriptor at block 16
    assert_eq!(&img[16 * BLOCK_SIZE..16 * BLOCK_SIZE + 6], b"\x01CD001");
}
