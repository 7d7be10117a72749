//! Property-style tests against the real qemu-img: random disks with
//! holes are converted by `qemu-img convert` into every format and
//! subformat; our reads must equal `qemu-img convert -O raw` byte for byte.

mod common;

use common::*;
use disk_image::{open_path, ByteRange, ChunkedRange, FileRange, NoExtents};
use std::path::Path;
use std::sync::Arc;

/// (label, qemu-img convert output options, file name)
const FORMATS: &[(&str, &[&str], &str)] = &[
    ("raw", &["-O", "raw"], "d.img"),
    (
        "vmdk monolithicSparse",
        &["-O", "vmdk", "-o", "subformat=monolithicSparse"],
        "d.vmdk",
    ),
    (
        "vmdk streamOptimized",
        &["-O", "vmdk", "-o", "subformat=streamOptimized"],
        "d.vmdk",
    ),
    (
        "vmdk monolithicFlat",
        &["-O", "vmdk", "-o", "subformat=monolithicFlat"],
        "d.vmdk",
    ),
    (
        "vmdk twoGbMaxExtentSparse",
        &["-O", "vmdk", "-o", "subformat=twoGbMaxExtentSparse"],
        "d.vmdk",
    ),
    (
        "vmdk twoGbMaxExtentFlat",
        &["-O", "vmdk", "-o", "subformat=twoGbMaxExtentFlat"],
        "d.vmdk",
    ),
    (
        "vmdk monolithicSparse zeroed-grain",
        &[
            "-O",
            "vmdk",
            "-o",
            "subformat=monolithicSparse,zeroed_grain=on",
        ],
        "d.vmdk",
    ),
    ("qcow2 v2", &["-O", "qcow2", "-o", "compat=0.10"], "d.qcow2"),
    ("qcow2 v3", &["-O", "qcow2", "-o", "compat=1.1"], "d.qcow2"),
    (
        "qcow2 v2 compressed",
        &["-c", "-O", "qcow2", "-o", "compat=0.10"],
        "d.qcow2",
    ),
    (
        "qcow2 v3 compressed",
        &["-c", "-O", "qcow2", "-o", "compat=1.1"],
        "d.qcow2",
    ),
    (
        "qcow2 v3 compressed 4k clusters",
        &["-c", "-O", "qcow2", "-o", "compat=1.1,cluster_size=4096"],
        "d.qcow2",
    ),
    (
        "qcow2 v3 2M clusters",
        &["-O", "qcow2", "-o", "compat=1.1,cluster_size=2M"],
        "d.qcow2",
    ),
];

fn convert(raw: &Path, opts: &[&str], out: &Path) {
    let mut args = vec!["convert", "-f", "raw"];
    args.extend_from_slice(opts);
    args.push(raw.to_str().unwrap());
    args.push(out.to_str().unwrap());
    qemu_img(&args);
}

fn run_seed(seed: u64, size: usize) {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("source.raw");
    std::fs::write(&raw, random_disk(seed, size)).unwrap();
    for (label, opts, file) in FORMATS {
        let sub = dir.path().join(label.replace(' ', "_"));
        std::fs::create_dir(&sub).unwrap();
        let image = sub.join(file);
        convert(&raw, opts, &image);
        let want = qemu_raw(&image, dir.path());
        let src = open_path(&image, &cache(dir.path())).unwrap_or_else(|e| panic!("{label}: {e}"));
        check_matches(src, &want, seed, &format!("{label} (seed {seed})"));
    }
}

#[test]
fn every_format_matches_qemu_img() {
    have_qemu_img();
    // Sizes not a multiple of the grain or cluster size on purpose.
    run_seed(1, (5 << 20) + 3 * 512);
    run_seed(2, (3 << 20) + 4096);
    run_seed(3, 64 << 10);
    // More random disks on demand: DISK_IMAGE_SEEDS=N runs N fresh seeds
    // (printed, so a failure can be replayed with DISK_IMAGE_SEED=S).
    let extra: Vec<u64> = match (
        std::env::var("DISK_IMAGE_SEED").ok(),
        std::env::var("DISK_IMAGE_SEEDS").ok(),
    ) {
        (Some(s), _) => vec![s.parse().expect("DISK_IMAGE_SEED is a number")],
        (None, Some(n)) => {
            let mut rng = Rng(std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64);
            (0..n.parse::<u64>().expect("DISK_IMAGE_SEEDS is a count"))
                .map(|_| rng.next())
                .collect()
        }
        (None, None) => Vec::new(),
    };
    for seed in extra {
        let size = 512 * (1 + Rng(seed).below(12 << 11)) as usize;
        eprintln!("seed {seed}: {size} bytes");
        run_seed(seed, size);
    }
}

/// A disk above 2 GiB splits twoGbMaxExtent formats into several files.
#[test]
fn multi_extent_disks_match_qemu_img() {
    have_qemu_img();
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("big.raw");
    let size: u64 = (4 << 30) + (3 << 20);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(&raw).unwrap();
        f.set_len(size).unwrap();
        let mut rng = Rng(77);
        // Data around each 2 GiB boundary and a few places in between.
        for at in [
            0u64,
            (2 << 30) - 6000,
            (2 << 30) + 4096,
            (4 << 30) - 100,
            size - 5000,
            123 << 20,
        ] {
            let chunk = random_disk(rng.next(), 200_000);
            let n = (size - at).min(chunk.len() as u64) as usize;
            f.write_all_at(&chunk[..n], at).unwrap();
        }
    }
    for sub in ["twoGbMaxExtentSparse", "twoGbMaxExtentFlat"] {
        let d = dir.path().join(sub);
        std::fs::create_dir(&d).unwrap();
        let image = d.join("big.vmdk");
        convert(
            &raw,
            &["-O", "vmdk", "-o", &format!("subformat={sub}")],
            &image,
        );
        let extents = std::fs::read_dir(&d).unwrap().count();
        assert!(
            extents >= 4,
            "{sub}: expected a descriptor and 3 extents, found {extents} files"
        );
        let src = open_path(&image, &cache(dir.path())).unwrap();
        assert_eq!(src.capacity(), size);
        // Compare against the source around every place that holds data.
        let want_file = std::fs::File::open(&raw).unwrap();
        let mut rng = Rng(5);
        for at in [
            0u64,
            (2 << 30) - 300_000,
            (2 << 30) - 10,
            (4 << 30) - 200_000,
            size - 400_000,
            123 << 20,
        ] {
            let len = 400_000.min((size - at) as usize);
            let mut got = vec![0u8; len];
            let mut want = vec![0u8; len];
            src.read_at(&mut got, at).unwrap();
            std::os::unix::fs::FileExt::read_exact_at(&want_file, &mut want, at).unwrap();
            assert!(got == want, "{sub}: differs in the {len} bytes at {at}");
            let off = rng.below(size - 4096);
            let mut a = [0u8; 4096];
            let mut b = [0u8; 4096];
            src.read_at(&mut a, off).unwrap();
            std::os::unix::fs::FileExt::read_exact_at(&want_file, &mut b, off).unwrap();
            assert_eq!(a, b, "{sub}: 4 KiB at {off}");
        }
    }
}

/// OVF `ovf:chunkSize`: a stream split into files read back as one.
#[test]
fn chunked_stream_matches_qemu_img() {
    have_qemu_img();
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("s.raw");
    std::fs::write(&raw, random_disk(9, 4 << 20)).unwrap();
    let image = dir.path().join("s.vmdk");
    convert(
        &raw,
        &["-O", "vmdk", "-o", "subformat=streamOptimized"],
        &image,
    );
    let want = qemu_raw(&image, dir.path());
    let bytes = std::fs::read(&image).unwrap();
    let mut parts: Vec<Box<dyn ByteRange>> = Vec::new();
    for (i, chunk) in bytes.chunks(100_000).enumerate() {
        let p = dir.path().join(format!("s.vmdk.{i:09}"));
        std::fs::write(&p, chunk).unwrap();
        parts.push(Box::new(FileRange::open(&p).unwrap()));
    }
    let joined = ChunkedRange::new(parts, "s.vmdk (chunked)").unwrap();
    let src =
        disk_image::open_image(Box::new(joined), None, &NoExtents, &cache(dir.path())).unwrap();
    check_matches(Arc::clone(&src), &want, 9, "chunked streamOptimized");
}

/// gzip of a qcow2: inflated to the cache, then sniffed as qcow2.
#[test]
fn gzipped_qcow2_matches_qemu_img() {
    have_qemu_img();
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("g.raw");
    std::fs::write(&raw, random_disk(11, 2 << 20)).unwrap();
    let image = dir.path().join("g.qcow2");
    convert(&raw, &["-O", "qcow2"], &image);
    let want = qemu_raw(&image, dir.path());
    let gz = dir.path().join("g.qcow2.gz");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -c {} > {}", image.display(), gz.display()))
        .status()
        .unwrap();
    assert!(status.success());
    let src = open_path(&gz, &cache(dir.path())).unwrap();
    check_matches(src, &want, 11, "gzip qcow2");
}
