//! Any image as a VHDX file (given as patches over zeros, see
//! `harness/sparse_image.rs`): opening and reading give errors, never
//! panics or runaway allocation.
#![no_main]

#[path = "../harness/exercise.rs"]
mod exercise;
#[path = "../harness/sparse_image.rs"]
mod sparse_image;

use disk_image::vhdx;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let Some(image) = sparse_image::SparseImage::decode(data) else {
        return;
    };
    let image = Arc::new(image);
    if let Ok(src) = vhdx::open(image) {
        exercise::exercise(&*src);
    }
});
