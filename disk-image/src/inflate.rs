//! Whole-buffer inflate for compressed grains and clusters.
//!
//! Both VMDK grains (zlib streams) and qcow2 clusters (raw deflate) are
//! small, independent, and have a known maximum output size, so one call
//! decompresses a whole unit into its final buffer. The backend is chosen
//! by measurement (see BENCHMARKS.md, "disk images").

use libdeflater::{DecompressionError, Decompressor};

/// Why a compressed unit could not be inflated.
#[derive(Debug, PartialEq, Eq)]
pub enum InflateError {
    /// The deflate stream is corrupt.
    Corrupt(String),
    /// The stream decompresses to more than the unit size.
    TooLong,
}

impl std::fmt::Display for InflateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InflateError::Corrupt(m) => write!(f, "corrupt deflate stream ({m})"),
            InflateError::TooLong => write!(
                f,
                "deflate stream decompresses to more than the grain/cluster size"
            ),
        }
    }
}

thread_local! {
    /// libdeflate's decompressor is a few KiB of tables: one per thread.
    static DECOMPRESSOR: std::cell::RefCell<Decompressor> = std::cell::RefCell::new(Decompressor::new());
}

fn inflate(src: &[u8], out: &mut [u8], zlib_header: bool) -> Result<usize, InflateError> {
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        let r = if zlib_header {
            d.zlib_decompress(src, out)
        } else {
            d.deflate_decompress(src, out)
        };
        r.map_err(|e| match e {
            DecompressionError::InsufficientSpace => InflateError::TooLong,
            DecompressionError::BadData => InflateError::Corrupt("bad data or cut short".into()),
        })
    })
}

/// Inflate one zlib stream (RFC 1950, as VMDK stores grains) into `out`;
/// returns the number of bytes produced. Trailing input is ignored.
pub fn inflate_zlib(src: &[u8], out: &mut [u8]) -> Result<usize, InflateError> {
    inflate(src, out, true)
}

/// Inflate one raw deflate stream (RFC 1951, as qcow2 stores clusters).
/// Trailing input (sector padding) is ignored.
pub fn inflate_raw(src: &[u8], out: &mut [u8]) -> Result<usize, InflateError> {
    inflate(src, out, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};

    fn deflate(data: &[u8], zlib: bool) -> Vec<u8> {
        let mut c = Compress::new(Compression::default(), zlib);
        let mut out = vec![0u8; data.len() + 1024];
        c.compress(data, &mut out, FlushCompress::Finish).unwrap();
        out.truncate(c.total_out() as usize);
        out
    }

    #[test]
    fn round_trips_and_ignores_trailing_padding() {
        let data: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
        let mut z = deflate(&data, true);
        z.extend_from_slice(&[0u8; 300]);
        let mut out = vec![0u8; 65536];
        assert_eq!(inflate_zlib(&z, &mut out), Ok(65536));
        assert_eq!(out, data);
        let r = deflate(&data[..1000], false);
        assert_eq!(inflate_raw(&r, &mut out), Ok(1000));
    }

    #[test]
    fn refuses_too_long_truncated_and_corrupt() {
        let data = vec![7u8; 8192];
        let z = deflate(&data, true);
        let mut small = vec![0u8; 4096];
        assert_eq!(inflate_zlib(&z, &mut small), Err(InflateError::TooLong));
        let mut out = vec![0u8; 8192];
        assert!(matches!(
            inflate_zlib(&z[..z.len() / 2], &mut out),
            Err(InflateError::Corrupt(_))
        ));
        assert!(matches!(
            inflate_zlib(b"garbage!garbage!", &mut out),
            Err(InflateError::Corrupt(_))
        ));
    }
}
