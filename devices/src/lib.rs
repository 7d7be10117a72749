//! Device models. `BlockSource` is the block backend trait (re-exported).
pub use block_source::BlockSource;
