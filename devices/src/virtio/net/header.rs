//! virtio_net_hdr_v1: the 12 bytes in front of every frame in both
//! directions once VIRTIO_F_VERSION_1 is negotiated (num_buffers is always
//! present then, even without mergeable receive buffers).

/// Length of virtio_net_hdr_v1.
pub const HDR_LEN: usize = 12;

pub const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
pub const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;

/// Offset of num_buffers in the header.
const NUM_BUFFERS: usize = 10;

/// The header the device puts before a received frame: no checksum or
/// segmentation work pending (none is offered), `num_buffers` used.
pub fn rx_header(num_buffers: u16) -> [u8; HDR_LEN] {
    let mut h = [0u8; HDR_LEN];
    h[NUM_BUFFERS..].copy_from_slice(&num_buffers.to_le_bytes());
    h
}

/// Why a transmitted header is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum TxHeaderError {
    /// Checksum offload requested, but it was not offered.
    NeedsChecksum,
    /// Segmentation requested, but no GSO feature was offered.
    Gso(u8),
}

impl std::fmt::Display for TxHeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TxHeaderError::NeedsChecksum => f.write_str("checksum offload asked but not offered"),
            TxHeaderError::Gso(t) => write!(f, "segmentation type {t} asked but not offered"),
        }
    }
}

/// Check a header from the guest. Without CSUM/GSO features the only
/// valid request is "send as is".
pub fn check_tx_header(h: &[u8; HDR_LEN]) -> Result<(), TxHeaderError> {
    let (flags, gso_type) = (h[0], h[1]);
    if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 {
        return Err(TxHeaderError::NeedsChecksum);
    }
    if gso_type != VIRTIO_NET_HDR_GSO_NONE {
        return Err(TxHeaderError::Gso(gso_type));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rx_header_carries_num_buffers_little_endian() {
        assert_eq!(rx_header(0x0102), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1]);
    }

    #[test]
    fn tx_header_without_offloads() {
        assert_eq!(check_tx_header(&[0; HDR_LEN]), Ok(()));
        let mut h = [0u8; HDR_LEN];
        h[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        assert_eq!(check_tx_header(&h), Err(TxHeaderError::NeedsChecksum));
        let mut h = [0u8; HDR_LEN];
        h[1] = 1;
        assert_eq!(check_tx_header(&h), Err(TxHeaderError::Gso(1)));
    }
}
