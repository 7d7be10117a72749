//! streamOptimized VMDKs as VMware and VirtualBox write them (grain
//! directory at the end, found through the footer), and the recovery when
//! that footer or the tables before it are gone: the marker scan.

mod common;

use common::*;
use disk_image::vmdk_sparse;
use disk_image::{BlockSource, MemRange};
use flate2::{write::ZlibEncoder, Compression};
use std::io::Write;
use std::sync::Arc;

const GRAIN: usize = 64 << 10;
const GTES: usize = 512;

fn sectors(n: usize) -> usize {
    n.div_ceil(512)
}

fn pad(v: &mut Vec<u8>) {
    v.resize(sectors(v.len()) * 512, 0);
}

fn header(capacity: usize, gd_offset: u64) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[0..4].copy_from_slice(b"KDMV");
    h[4..8].copy_from_slice(&3u32.to_le_bytes());
    h[8..12].copy_from_slice(&0x30001u32.to_le_bytes());
    h[12..20].copy_from_slice(&(sectors(capacity) as u64).to_le_bytes());
    h[20..28].copy_from_slice(&128u64.to_le_bytes());
    h[28..36].copy_from_slice(&1u64.to_le_bytes());
    h[36..44].copy_from_slice(&1u64.to_le_bytes());
    h[44..48].copy_from_slice(&(GTES as u32).to_le_bytes());
    h[56..64].copy_from_slice(&gd_offset.to_le_bytes());
    h[64..72].copy_from_slice(&2u64.to_le_bytes());
    h[73..77].copy_from_slice(b"\n \r\n");
    h[77..79].copy_from_slice(&1u16.to_le_bytes());
    h
}

fn marker(val: u64, kind: u32) -> Vec<u8> {
    let mut m = vec![0u8; 512];
    m[0..8].copy_from_slice(&val.to_le_bytes());
    m[12..16].copy_from_slice(&kind.to_le_bytes());
    m
}

/// Write `data` the way VMware's stream writer does.
fn vmware_stream(data: &[u8]) -> Vec<u8> {
    let mut out = header(data.len(), u64::MAX);
    let mut desc = format!(
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"streamOptimized\"\nRW {} SPARSE \"x.vmdk\"\n",
        sectors(data.len())
    )
    .into_bytes();
    pad(&mut desc);
    out.extend_from_slice(&desc);
    let grains = data.len().div_ceil(GRAIN);
    let mut gts = vec![0u32; grains.div_ceil(GTES) * GTES];
    for g in 0..grains {
        let chunk = &data[g * GRAIN..((g + 1) * GRAIN).min(data.len())];
        if chunk.iter().all(|&b| b == 0) {
            continue;
        }
        let mut z = ZlibEncoder::new(Vec::new(), Compression::fast());
        z.write_all(chunk).unwrap();
        let z = z.finish().unwrap();
        gts[g] = (out.len() / 512) as u32;
        out.extend_from_slice(&((g * 128) as u64).to_le_bytes());
        out.extend_from_slice(&(z.len() as u32).to_le_bytes());
        out.extend_from_slice(&z);
        pad(&mut out);
    }
    let mut gd = Vec::new();
    for table in gts.chunks(GTES) {
        out.extend_from_slice(&marker(4, 1));
        gd.push((out.len() / 512) as u32);
        for e in table {
            out.extend_from_slice(&e.to_le_bytes());
        }
    }
    out.extend_from_slice(&marker(sectors(gd.len() * 4) as u64, 2));
    let gd_at = out.len() / 512;
    for e in &gd {
        out.extend_from_slice(&e.to_le_bytes());
    }
    pad(&mut out);
    out.extend_from_slice(&marker(1, 3));
    out.extend_from_slice(&header(data.len(), gd_at as u64));
    out.extend_from_slice(&marker(0, 0));
    out
}

fn open(bytes: Vec<u8>) -> Result<vmdk_sparse::SparseSource, disk_image::DiskError> {
    vmdk_sparse::open(Arc::new(MemRange::new(bytes, "x.vmdk")))
}

fn data() -> Vec<u8> {
    random_disk(21, (3 << 20) + 1536)
}

#[test]
fn footer_stream_reads_and_matches_qemu_img() {
    let data = data();
    let image = vmware_stream(&data);
    let src = open(image.clone()).unwrap();
    assert!(!src.map().recovered_by_scan());
    check_matches(Arc::new(src), &data, 21, "VMware-style stream");
    if have_qemu_img() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.vmdk");
        std::fs::write(&p, &image).unwrap();
        assert!(
            qemu_raw(&p, dir.path()) == data,
            "qemu-img reads our test stream differently"
        );
    }
}

#[test]
fn chopped_footer_is_recovered_by_marker_scan() {
    let data = data();
    let image = vmware_stream(&data);
    // Footer and end-of-stream markers cut off.
    let cut = image[..image.len() - 1536].to_vec();
    let src = open(cut).unwrap();
    assert!(src.map().recovered_by_scan());
    check_matches(Arc::new(src), &data, 22, "stream without footer");
    // Everything after the last grain cut off (no tables at all).
    let last_grain_end =
        image.len() - 1536 - 512 - 512 - (data.len().div_ceil(GRAIN).div_ceil(GTES) * (512 + 2048));
    let src = open(image[..last_grain_end].to_vec()).unwrap();
    assert!(src.map().recovered_by_scan());
    check_matches(Arc::new(src), &data, 23, "stream without tables");
    // A footer with a broken magic.
    let mut broken = image.clone();
    let at = broken.len() - 1024;
    broken[at] = b'X';
    let src = open(broken).unwrap();
    assert!(src.map().recovered_by_scan());
    check_matches(Arc::new(src), &data, 24, "stream with corrupt footer");
}

#[test]
fn qemu_stream_with_lost_directory_is_recovered() {
    have_qemu_img();
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("q.raw");
    std::fs::write(&raw, random_disk(31, 2 << 20)).unwrap();
    let image = dir.path().join("q.vmdk");
    to_stream_vmdk(&raw, &image);
    let want = qemu_raw(&image, dir.path());
    let mut bytes = std::fs::read(&image).unwrap();
    // Pretend the directory is at the end, and the end is gone.
    bytes[56..64].copy_from_slice(&u64::MAX.to_le_bytes());
    let len = bytes.len();
    bytes.truncate(len - 1024);
    let src = open(bytes).unwrap();
    assert!(src.map().recovered_by_scan());
    check_matches(Arc::new(src), &want, 31, "qemu stream, directory lost");
}

#[test]
fn corrupt_grain_is_a_clear_read_error() {
    let data = data();
    let mut image = vmware_stream(&data);
    // The first grain starts at sector 2: break its deflate stream.
    for b in &mut image[1024 + 12 + 2..1024 + 12 + 40] {
        *b ^= 0x5a;
    }
    let src = open(image).unwrap();
    let first_data = data.iter().position(|&b| b != 0).unwrap() as u64;
    let mut buf = vec![0u8; 4096];
    let e = src
        .read_at(&mut buf, first_data / GRAIN as u64 * GRAIN as u64)
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("x.vmdk") && msg.contains("grain"), "{msg}");
}

#[test]
fn truncated_streams_never_panic() {
    let image = vmware_stream(&random_disk(41, 1 << 20));
    let mut rng = Rng(41);
    for _ in 0..200 {
        let len = rng.below(image.len() as u64) as usize;
        if let Ok(src) = open(image[..len].to_vec()) {
            let mut buf = vec![0u8; 70_000];
            for off in [0u64, 65536 * 3, src.capacity().saturating_sub(70_000)] {
                let _ = src.read_at(&mut buf, off);
            }
        }
    }
}
