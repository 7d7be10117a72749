//! Any image as a VHD file (given as patches over zeros, see
//! `harness/sparse_image.rs`): opening and reading give errors, never
//! panics or runaway allocation.
#![no_main]

#[path = "../harness/exercise.rs"]
mod exercise;
#[path = "../harness/sparse_image.rs"]
mod sparse_image;

use disk_image::vhd;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let Some(image) = sparse_image::SparseImage::decode(data) else {
        return;
    };
    let image = Arc::new(image);
    // How open_image tells a fixed VHD (a footer at the end) from raw.
    let _ = vhd::has_fixed_footer(&*image);
    if let Ok(src) = vhd::open(image) {
        exercise::exercise(&*src);
    }
});
