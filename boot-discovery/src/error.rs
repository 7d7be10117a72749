//! Errors a user can act on: what could not be read, or what the disk holds
//! and what it lacks.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The disk layer failed while reading a structure we need.
    #[error("cannot read {what} from the boot disk: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },

    /// The disk was read fine but holds nothing we can boot. `report` lists
    /// the partition table, partitions, filesystems and files looked for.
    #[error("no bootable Linux kernel found on the boot disk\n{report}")]
    NothingBootable { report: String },
}

impl DiscoveryError {
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        DiscoveryError::Io {
            what: what.into(),
            source,
        }
    }
}

/// A failure inside one filesystem; discovery records it as a note and
/// moves on to the next candidate rather than giving up.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{path} is {size} bytes, more than the {max} bytes allowed for it")]
    TooLarge { path: String, size: u64, max: u64 },
    #[error("cannot read {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("{path}: too many levels of symbolic links")]
    SymlinkLoop { path: String },
}
