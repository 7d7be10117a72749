//! The transmit path: one descriptor chain from the guest becomes one
//! Ethernet frame for the backend. Every way a chain can be wrong fails
//! that packet only.

use super::header::{check_tx_header, TxHeaderError, HDR_LEN};
use crate::net_backend::{MAX_FRAME, MIN_FRAME};
use crate::virtio::Memory;
use std::io::Read;
use virtio_queue::DescriptorChain;

#[derive(Debug, PartialEq, Eq)]
pub enum TxError {
    /// A device-writable descriptor in a chain the device may only read.
    WritableDescriptor,
    /// A descriptor outside guest memory, or lengths that overflow.
    BadDescriptor,
    TooShort(usize),
    TooLong(usize),
    Header(TxHeaderError),
}

impl std::fmt::Display for TxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TxError::WritableDescriptor => {
                f.write_str("device-writable descriptor in a transmit chain")
            }
            TxError::BadDescriptor => f.write_str("descriptor outside guest memory"),
            TxError::TooShort(n) => {
                write!(f, "{n} bytes, shorter than header plus Ethernet header")
            }
            TxError::TooLong(n) => write!(f, "{n} bytes, longer than header plus {MAX_FRAME}"),
            TxError::Header(e) => write!(f, "header: {e}"),
        }
    }
}

/// Read the frame of `chain` (without its header) into `buf`, which holds
/// at least [`MAX_FRAME`] bytes; returns the frame's length.
pub fn read_frame(
    chain: DescriptorChain<&Memory>,
    mem: &Memory,
    buf: &mut [u8],
) -> Result<usize, TxError> {
    if chain.clone().any(|d| d.is_write_only()) {
        return Err(TxError::WritableDescriptor);
    }
    let mut reader = chain.reader(mem).map_err(|_| TxError::BadDescriptor)?;
    let total = reader.available_bytes();
    if total < HDR_LEN + MIN_FRAME {
        return Err(TxError::TooShort(total));
    }
    let len = total - HDR_LEN;
    if len > MAX_FRAME || len > buf.len() {
        return Err(TxError::TooLong(total));
    }
    let mut hdr = [0u8; HDR_LEN];
    reader
        .read_exact(&mut hdr)
        .map_err(|_| TxError::BadDescriptor)?;
    check_tx_header(&hdr).map_err(TxError::Header)?;
    reader
        .read_exact(&mut buf[..len])
        .map_err(|_| TxError::BadDescriptor)?;
    Ok(len)
}
