//! Every committed input of the disk-image fuzz targets (`fuzz/seeds`,
//! `fuzz/regressions`) replayed the way the targets use it.

#[path = "../../fuzz/harness/exercise.rs"]
mod exercise;
#[path = "../../tests/support/fuzz_inputs.rs"]
mod fuzz_inputs;
#[path = "../../fuzz/harness/sparse_image.rs"]
mod sparse_image;

use disk_image::{
    qcow2, vhd, vhdx, vmdk_descriptor, vmdk_sparse, BlockSource, ByteRange, ExtentResolver,
    MemRange,
};
use std::path::Path;
use std::sync::Arc;

fn fuzz_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz"))
}

/// The targets' reads: a few offsets, then three back to back.
fn exercise(src: &dyn BlockSource) {
    let cap = src.capacity();
    let mut buf = vec![0u8; 256 << 10];
    for off in [
        0,
        512,
        cap / 3,
        cap / 2,
        cap.saturating_sub(buf.len() as u64),
    ] {
        let n = (cap - off.min(cap)).min(buf.len() as u64) as usize;
        let _ = src.read_at(&mut buf[..n], off);
    }
    let mut at = 0u64;
    for _ in 0..3 {
        let n = (cap - at).min(64 << 10) as usize;
        let _ = src.read_at(&mut buf[..n], at);
        at += n as u64;
    }
}

#[test]
fn vmdk_inputs() {
    for (path, data) in fuzz_inputs::inputs(fuzz_dir(), "vmdk") {
        eprintln!("{}", path.display());
        if let Ok(src) = vmdk_sparse::open(Arc::new(MemRange::new(data, "fuzz.vmdk"))) {
            exercise(&src);
        }
    }
}

#[test]
fn qcow2_inputs() {
    for (path, data) in fuzz_inputs::inputs(fuzz_dir(), "qcow2") {
        eprintln!("{}", path.display());
        if let Ok(src) = qcow2::open(Arc::new(MemRange::new(data, "fuzz.qcow2"))) {
            exercise(&src);
        }
    }
}

struct Same(Arc<[u8]>);

impl ExtentResolver for Same {
    fn resolve(&self, name: &str) -> std::io::Result<Box<dyn ByteRange>> {
        Ok(Box::new(MemRange::new(self.0.clone(), name)))
    }
}

#[test]
fn vmdk_descriptor_inputs() {
    for (path, data) in fuzz_inputs::inputs(fuzz_dir(), "vmdk_descriptor") {
        eprintln!("{}", path.display());
        let bytes: Arc<[u8]> = Arc::from(data);
        let input = MemRange::new(bytes.clone(), "fuzz.vmdk");
        if let Ok(src) = vmdk_descriptor::open(&input, &Same(bytes)) {
            exercise(&src);
        }
    }
}

/// The vhd and vhdx targets' inputs (patches over zeros); every seed, all
/// made by qemu-img, must open.
fn sparse_inputs(
    target: &str,
    open: fn(Arc<dyn ByteRange>) -> Result<Arc<dyn BlockSource>, disk_image::DiskError>,
) {
    for (path, data) in fuzz_inputs::inputs(fuzz_dir(), target) {
        eprintln!("{}", path.display());
        let Some(image) = sparse_image::SparseImage::decode(&data) else {
            continue;
        };
        let image: Arc<dyn ByteRange> = Arc::new(image);
        let _ = vhd::has_fixed_footer(&*image);
        match open(image) {
            Ok(src) => exercise::exercise(&*src),
            Err(e) => assert!(
                !path.to_string_lossy().contains("/seeds/"),
                "{}: {e}",
                path.display()
            ),
        }
    }
}

#[test]
fn vhd_inputs() {
    sparse_inputs("vhd", vhd::open);
}

#[test]
fn vhdx_inputs() {
    sparse_inputs("vhdx", vhdx::open);
}
