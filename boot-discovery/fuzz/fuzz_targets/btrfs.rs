//! Any bytes as a btrfs volume (in the sparse form of `fuzz/sparse.rs`):
//! the superblock, chunk map, tree search, subvolumes, directories,
//! symlinks and compressed extents, as discovery reads them.
//!
//! Seeds (`seeds/btrfs/*.sparse`) are mkfs.btrfs 6.14 images turned into
//! patches by `fuzz/sparse_seed.py` at the repository top, each from a
//! root with `boot/grub/grub.cfg`, `boot/vmlinuz-6.1` ("kernel\n") and a
//! `vmlinuz` symlink to it (the subvolume ones in `@`, with
//! `boot/big.txt` = `yes 'compressible line' | head -c 20000`):
//!
//!     truncate -s 128M img
//!     mkfs.btrfs -q -f -n 4096 -m single -d single --rootdir ROOT --shrink \
//!         [-u default:@ --compress zstd | -u @ --compress lzo] img
//!     python3 fuzz/sparse_seed.py img SEED
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../sparse.rs"]
mod sparse;

fuzz_target!(|data: &[u8]| sparse::exercise(data));
