//! Any bytes as a btrfs volume (in the sparse form of `fuzz/sparse.rs`):
//! the superblock, chunk map, tree search, subvolumes, directories,
//! symlinks and compressed extents, as discovery reads them.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../sparse.rs"]
mod sparse;

fuzz_target!(|data: &[u8]| sparse::exercise(data));
