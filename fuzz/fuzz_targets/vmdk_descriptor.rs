//! Any bytes as a VMDK text descriptor; extent names resolve to the same
//! bytes, so sparse extents get fuzzed through the descriptor too.
#![no_main]

use disk_image::{vmdk_descriptor, BlockSource, ByteRange, ExtentResolver, MemRange};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

/// Every extent name resolves to the input itself (shared, not copied:
/// a descriptor may name thousands of extents).
struct Same(Arc<[u8]>);

impl ExtentResolver for Same {
    fn resolve(&self, name: &str) -> std::io::Result<Box<dyn ByteRange>> {
        Ok(Box::new(MemRange::new(self.0.clone(), name)))
    }
}

fuzz_target!(|data: &[u8]| {
    let bytes: Arc<[u8]> = Arc::from(data);
    let input = MemRange::new(bytes.clone(), "fuzz.vmdk");
    let Ok(src) = vmdk_descriptor::open(&input, &Same(bytes)) else { return };
    let cap = src.capacity();
    let mut buf = vec![0u8; 64 << 10];
    for off in [0, cap / 2, cap.saturating_sub(buf.len() as u64)] {
        let n = (cap - off.min(cap)).min(buf.len() as u64) as usize;
        let _ = src.read_at(&mut buf[..n], off);
    }
});
