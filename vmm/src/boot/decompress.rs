//! Pull the vmlinux ELF out of a bzImage so it can be booted through PVH.
//!
//! The setup header's `payload_offset`/`payload_length` (boot protocol
//! 2.08+) locate the compressed kernel inside the protected-mode part; the
//! format is told by its magic bytes.

use std::io::Read;

#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    #[error("the bzImage is too short or its setup header is damaged ({0})")]
    Header(&'static str),
    #[error("the bzImage uses boot protocol {0:#x}; locating its payload needs 2.08 or later")]
    OldProtocol(u16),
    #[error("the kernel payload is compressed with {0}, which this monitor cannot decompress on the host")]
    Unsupported(&'static str),
    #[error("the kernel payload does not decompress: {0}")]
    Corrupt(String),
    #[error("the decompressed kernel would exceed {0} MiB")]
    TooLarge(u64),
}

/// Upper bound on a decompressed kernel; real ones are 20-80 MiB.
const MAX_VMLINUX: u64 = 512 << 20;

/// Where the payload lies in the file and which compressor made it.
pub fn payload(bzimage: &[u8]) -> Result<(&[u8], &'static str), DecompressError> {
    if bzimage.len() < 0x250 || &bzimage[0x202..0x206] != b"HdrS" {
        return Err(DecompressError::Header("no HdrS signature"));
    }
    let version = u16::from_le_bytes([bzimage[0x206], bzimage[0x207]]);
    if version < 0x208 {
        return Err(DecompressError::OldProtocol(version));
    }
    let setup_sects = match bzimage[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let pm_start = (setup_sects + 1) * 512;
    let off = u32::from_le_bytes(bzimage[0x248..0x24c].try_into().unwrap()) as usize;
    let len = u32::from_le_bytes(bzimage[0x24c..0x250].try_into().unwrap()) as usize;
    let start = pm_start
        .checked_add(off)
        .ok_or(DecompressError::Header("payload offset overflows"))?;
    let end = start
        .checked_add(len)
        .filter(|&e| e <= bzimage.len())
        .ok_or(DecompressError::Header(
            "payload extends past the end of the file",
        ))?;
    let data = &bzimage[start..end];
    let kind = match data {
        [0x1f, 0x8b, ..] => "gzip",
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => "xz",
        [0x28, 0xb5, 0x2f, 0xfd, ..] => "zstd",
        [b'B', b'Z', b'h', ..] => "bzip2",
        [0x02, 0x21, 0x4c, 0x18, ..] => "lz4",
        [0x89, b'L', b'Z', b'O', ..] => "lzo",
        [0x5d, 0, ..] => "lzma",
        [0x7f, b'E', b'L', b'F', ..] => "none",
        _ => "an unknown format",
    };
    Ok((data, kind))
}

/// The kernel appends its uncompressed size after the xz stream, which a
/// stream reader would take for a second, broken stream: decode exactly one.
fn xz(data: &[u8]) -> Result<Vec<u8>, DecompressError> {
    use xz2::stream::{Action, Status, Stream};
    let mut s = Stream::new_stream_decoder(u64::MAX, 0)
        .map_err(|e| DecompressError::Corrupt(e.to_string()))?;
    let mut out: Vec<u8> = Vec::with_capacity(64 << 20);
    loop {
        if out.len() == out.capacity() {
            if out.len() as u64 >= MAX_VMLINUX {
                return Err(DecompressError::TooLarge(MAX_VMLINUX >> 20));
            }
            out.reserve(out.len().max(1 << 20));
        }
        let consumed = s.total_in() as usize;
        let status = s
            .process_vec(&data[consumed..], &mut out, Action::Run)
            .map_err(|e| DecompressError::Corrupt(e.to_string()))?;
        match status {
            Status::StreamEnd => break,
            _ if s.total_in() as usize == data.len() && out.len() < out.capacity() => {
                return Err(DecompressError::Corrupt(
                    "the xz stream is truncated".into(),
                ))
            }
            _ => {}
        }
    }
    check_elf(out)
}

/// The kernel's LZ4 "legacy" format: a magic number, then blocks of
/// (le32 compressed size, raw LZ4 block of at most 8 MiB output). The
/// stream ends at the end of the data or at a size that does not fit, which
/// is how the appended uncompressed-size trailer reads.
fn lz4_legacy(data: &[u8]) -> Result<Vec<u8>, DecompressError> {
    const MAGIC: u32 = 0x184c_2102;
    const BLOCK_OUT: usize = 8 << 20;
    let mut pos = 4;
    let mut out: Vec<u8> = Vec::new();
    while pos + 4 <= data.len() {
        let size = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap());
        pos += 4;
        if size == MAGIC {
            continue;
        }
        let size = size as usize;
        if size == 0 || size > data.len() - pos {
            break;
        }
        let start = out.len();
        if (start + BLOCK_OUT) as u64 > MAX_VMLINUX + BLOCK_OUT as u64 {
            return Err(DecompressError::TooLarge(MAX_VMLINUX >> 20));
        }
        out.resize(start + BLOCK_OUT, 0);
        let n = lz4_flex::block::decompress_into(&data[pos..pos + size], &mut out[start..])
            .map_err(|e| DecompressError::Corrupt(format!("lz4 block at {pos}: {e}")))?;
        out.truncate(start + n);
        pos += size;
    }
    check_elf(out)
}

fn check_elf(out: Vec<u8>) -> Result<Vec<u8>, DecompressError> {
    if !out.starts_with(b"\x7fELF") {
        return Err(DecompressError::Corrupt(
            "the payload is not an ELF image".into(),
        ));
    }
    Ok(out)
}

/// Decompress the payload of `bzimage` into the vmlinux ELF.
pub fn vmlinux(bzimage: &[u8]) -> Result<Vec<u8>, DecompressError> {
    let (data, kind) = payload(bzimage)?;
    let reader: Box<dyn Read + '_> = match kind {
        "gzip" => Box::new(flate2::read::GzDecoder::new(data)),
        "xz" => return xz(data),
        "lz4" => return lz4_legacy(data),
        "none" => return Ok(data.to_vec()),
        other => return Err(DecompressError::Unsupported(other)),
    };
    let mut out = Vec::new();
    reader
        .take(MAX_VMLINUX + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecompressError::Corrupt(e.to_string()))?;
    if out.len() as u64 > MAX_VMLINUX {
        return Err(DecompressError::TooLarge(MAX_VMLINUX >> 20));
    }
    check_elf(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn fake_bzimage(payload: &[u8]) -> Vec<u8> {
        let mut img = vec![0u8; 5 * 512];
        img[0x1f1] = 4;
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        img[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        img[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        img.extend_from_slice(&[0u8; 16]);
        img.extend_from_slice(payload);
        img
    }

    #[test]
    fn gzip_and_xz_payloads_decompress() {
        let elf = b"\x7fELF and the rest of a kernel".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&elf).unwrap();
        let img = fake_bzimage(&gz.finish().unwrap());
        assert_eq!(vmlinux(&img).unwrap(), elf);
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&elf).unwrap();
        let mut payload = xz.finish().unwrap();
        payload.extend_from_slice(&(elf.len() as u32).to_le_bytes());
        assert_eq!(vmlinux(&fake_bzimage(&payload)).unwrap(), elf);
    }

    #[test]
    fn lz4_legacy_payloads_decompress() {
        let elf = b"\x7fELF and the rest of a kernel".repeat(1000);
        let block = lz4_flex::block::compress(&elf);
        let mut payload = 0x184c_2102u32.to_le_bytes().to_vec();
        payload.extend_from_slice(&(block.len() as u32).to_le_bytes());
        payload.extend_from_slice(&block);
        payload.extend_from_slice(&(elf.len() as u32).to_le_bytes());
        assert_eq!(vmlinux(&fake_bzimage(&payload)).unwrap(), elf);
        // A block whose contents are garbage fails cleanly.
        let mut bad = 0x184c_2102u32.to_le_bytes().to_vec();
        bad.extend_from_slice(&8u32.to_le_bytes());
        bad.extend_from_slice(&[0xff; 8]);
        assert!(matches!(
            vmlinux(&fake_bzimage(&bad)),
            Err(DecompressError::Corrupt(_))
        ));
    }

    #[test]
    fn damaged_images_are_refused() {
        assert!(matches!(
            vmlinux(&[0u8; 100]),
            Err(DecompressError::Header(_))
        ));
        let mut img = fake_bzimage(b"\x28\xb5\x2f\xfdzzzz");
        assert!(matches!(
            vmlinux(&img),
            Err(DecompressError::Unsupported("zstd"))
        ));
        img[0x24c..0x250].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(vmlinux(&img), Err(DecompressError::Header(_))));
        let img = fake_bzimage(&[0x1f, 0x8b, 1, 2, 3]);
        assert!(matches!(vmlinux(&img), Err(DecompressError::Corrupt(_))));
    }
}
