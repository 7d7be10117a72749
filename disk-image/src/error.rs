//! One error type for every image problem, phrased for the user: which
//! file (or package member), what is wrong, and where.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// Reading the image's own bytes failed (truncated file, I/O error).
    #[error("{name}: cannot read {what}: {source}")]
    Io {
        name: String,
        what: String,
        #[source]
        source: io::Error,
    },

    /// The image's structures are inconsistent or hostile.
    #[error("{name}: malformed {format} image: {what} (at byte offset {offset})")]
    Malformed {
        name: String,
        format: &'static str,
        what: String,
        offset: u64,
    },

    /// A valid image using a feature ovf-run deliberately does not read.
    #[error("{name}: unsupported {format} image: {what}")]
    Unsupported {
        name: String,
        format: &'static str,
        what: String,
    },

    /// The format was given (e.g. by the OVF) but the bytes do not match.
    #[error("{name}: declared as {declared} but {what}")]
    FormatMismatch {
        name: String,
        declared: &'static str,
        what: String,
    },

    /// A VMDK descriptor names an extent file that cannot be resolved.
    #[error("{name}: extent {extent:?}: {what}")]
    Extent {
        name: String,
        extent: String,
        what: String,
    },

    /// Working files (gzip cache, overlay, export target) failed.
    #[error("{path}: {what}: {source}")]
    Local {
        path: PathBuf,
        what: String,
        #[source]
        source: io::Error,
    },

    /// An existing persistent overlay does not fit the disk it would cover.
    #[error("{path}: {what}")]
    Overlay { path: PathBuf, what: String },
}

impl DiskError {
    pub(crate) fn malformed(
        name: &str,
        format: &'static str,
        offset: u64,
        what: impl Into<String>,
    ) -> Self {
        DiskError::Malformed {
            name: name.to_string(),
            format,
            what: what.into(),
            offset,
        }
    }

    pub(crate) fn unsupported(name: &str, format: &'static str, what: impl Into<String>) -> Self {
        DiskError::Unsupported {
            name: name.to_string(),
            format,
            what: what.into(),
        }
    }

    pub(crate) fn io(name: &str, what: impl Into<String>, source: io::Error) -> Self {
        DiskError::Io {
            name: name.to_string(),
            what: what.into(),
            source,
        }
    }

    pub(crate) fn local(
        path: impl Into<PathBuf>,
        what: impl Into<String>,
        source: io::Error,
    ) -> Self {
        DiskError::Local {
            path: path.into(),
            what: what.into(),
            source,
        }
    }
}

/// Block sources speak `io::Error`; malformed data found while reading is
/// `InvalidData` carrying the full message.
impl From<DiskError> for io::Error {
    fn from(e: DiskError) -> io::Error {
        let kind = match &e {
            DiskError::Io { source, .. } | DiskError::Local { source, .. } => source.kind(),
            DiskError::Unsupported { .. } => io::ErrorKind::Unsupported,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e.to_string())
    }
}
