//! The state file: a fixed header, then the [`Snapshot`] encoded with
//! postcard.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "OVFRSNAP"
//!      8     4  format version, little endian (FORMAT_VERSION)
//!     12     8  body length in bytes, little endian
//!     20    32  SHA-256 of the body
//!     52     …  body: postcard encoding of Snapshot
//! ```
//!
//! Every way a file can be wrong is a [`StateFileError`] saying which:
//! not a snapshot, another format version, cut short, longer than it says,
//! any byte changed (the digest), or a body that does not decode. The
//! checks run in that order and none trusts a length before comparing it
//! with the file's real size, so no input makes the parser panic or
//! allocate beyond [`MAX_BODY`].

use crate::Snapshot;
use sha2::{Digest, Sha256};

/// First bytes of every state file.
pub const MAGIC: [u8; 8] = *b"OVFRSNAP";
/// The layout of [`Snapshot`]; bumped on every change to it (a restore
/// accepts only its own version).
pub const FORMAT_VERSION: u32 = 1;
/// Header size in bytes.
pub const HEADER_LEN: usize = 52;
/// Largest body accepted (the state without guest memory is a few hundred
/// KiB even with many vCPUs).
pub const MAX_BODY: u64 = 64 << 20;

/// Why a state file cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateFileError {
    #[error("not an ovf-run snapshot state file (it does not start with \"OVFRSNAP\")")]
    NotASnapshot,
    #[error(
        "snapshot format version {found}; this ovf-run reads version {supported} only (take the snapshot again with this version)"
    )]
    Version { found: u32, supported: u32 },
    #[error("the state file is cut short: {needed} bytes expected, {got} present")]
    Truncated { needed: u64, got: u64 },
    #[error("the state file has {extra} bytes after its end")]
    TrailingBytes { extra: u64 },
    #[error("the state file's body is {len} bytes, more than the {MAX_BODY} accepted")]
    TooLarge { len: u64 },
    #[error("the state file is corrupt: its contents do not match its SHA-256")]
    Corrupt,
    #[error("the state file's body does not decode: {0}")]
    Decode(String),
}

/// Encode `snapshot` as a state file.
pub fn encode(snapshot: &Snapshot) -> Vec<u8> {
    // Encoding into a Vec fails only on types serde cannot represent,
    // which Snapshot has none of.
    let body = postcard::to_stdvec(snapshot).expect("a Snapshot always encodes");
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(&body));
    out.extend_from_slice(&body);
    out
}

/// Decode a state file (the whole file's bytes).
pub fn decode(bytes: &[u8]) -> Result<Snapshot, StateFileError> {
    let got = bytes.len() as u64;
    if bytes.len() < MAGIC.len() {
        return Err(if MAGIC.starts_with(bytes) {
            StateFileError::Truncated {
                needed: HEADER_LEN as u64,
                got,
            }
        } else {
            StateFileError::NotASnapshot
        });
    }
    if bytes[..8] != MAGIC {
        return Err(StateFileError::NotASnapshot);
    }
    if bytes.len() < HEADER_LEN {
        return Err(StateFileError::Truncated {
            needed: HEADER_LEN as u64,
            got,
        });
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(StateFileError::Version {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    if len > MAX_BODY {
        return Err(StateFileError::TooLarge { len });
    }
    let present = got - HEADER_LEN as u64;
    if present < len {
        return Err(StateFileError::Truncated {
            needed: HEADER_LEN as u64 + len,
            got,
        });
    }
    if present > len {
        return Err(StateFileError::TrailingBytes {
            extra: present - len,
        });
    }
    let body = &bytes[HEADER_LEN..];
    if Sha256::digest(body).as_slice() != &bytes[20..52] {
        return Err(StateFileError::Corrupt);
    }
    decode_body(body)
}

/// Decode a body whose digest was checked (public for the fuzz target,
/// which feeds it bytes no digest protects).
pub fn decode_body(body: &[u8]) -> Result<Snapshot, StateFileError> {
    match postcard::take_from_bytes::<Snapshot>(body) {
        Ok((snapshot, [])) => Ok(snapshot),
        Ok((_, rest)) => Err(StateFileError::Decode(format!(
            "{} bytes left over after the snapshot",
            rest.len()
        ))),
        Err(e) => Err(StateFileError::Decode(e.to_string())),
    }
}
