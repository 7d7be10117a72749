//! Disk image formats read in place. See the crate description.
