//! Splitting an image into its archives and inflating each one.
//!
//! Compressed archives are read through `bufread` decoders over the image
//! slice: they consume exactly their own stream, so the slice left over is
//! where the next archive starts (after zero padding), as the kernel's
//! `unpack_to_rootfs` sees it.

use super::cpio::{self, TRAILER};
use super::{
    normalise, DecodeFailed, Entry, Initramfs, InitramfsError, Limits, OverBudget, Segment,
};
use std::io::{self, Read};

/// How one archive of the image is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Xz,
    Lz4Legacy,
    Lz4Frame,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
            Compression::Lz4Legacy => "lz4 (legacy)",
            Compression::Lz4Frame => "lz4 (frame)",
        }
    }
}

const LZ4_LEGACY_MAGIC: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];
/// The kernel's LZ4 legacy blocks inflate to at most 8 MiB.
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

fn detect(b: &[u8], offset: u64) -> Result<Compression, InitramfsError> {
    let unsupported = |format| Err(InitramfsError::Unsupported { offset, format });
    match b {
        [b'0', b'7', b'0', b'7', ..] => Ok(Compression::None),
        [0x1f, 0x8b | 0x9e, ..] => Ok(Compression::Gzip),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Ok(Compression::Zstd),
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => Ok(Compression::Xz),
        [0x02, 0x21, 0x4c, 0x18, ..] => Ok(Compression::Lz4Legacy),
        [0x04, 0x22, 0x4d, 0x18, ..] => Ok(Compression::Lz4Frame),
        [b'B', b'Z', b'h', ..] => unsupported("bzip2"),
        [0x89, b'L', b'Z', b'O', ..] => unsupported("lzo"),
        [0x5d, 0, 0, ..] => unsupported("lzma"),
        _ => Err(InitramfsError::Unrecognised { offset }),
    }
}

/// Counts inflated bytes against the image-wide budget.
struct Budget<'a, R> {
    inner: R,
    used: &'a mut u64,
    limit: u64,
}

impl<R: Read> Read for Budget<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        *self.used += n as u64;
        if *self.used > self.limit {
            return Err(io::Error::other(OverBudget(self.limit)));
        }
        Ok(n)
    }
}

/// The kernel's LZ4 legacy format: magic, then blocks of a little-endian
/// u32 compressed length and the block. It ends at the end of the input,
/// at a zero length (padding), or at a length that is another magic.
struct Lz4Legacy<'a, 'b> {
    src: &'a mut &'b [u8],
    out: Vec<u8>,
    at: usize,
}

impl Lz4Legacy<'_, '_> {
    fn next_block(&mut self) -> io::Result<bool> {
        let len = loop {
            let Some(word) = self.src.get(..4) else {
                return Ok(false);
            };
            // A magic inside the stream starts another one: skip it.
            if word != LZ4_LEGACY_MAGIC {
                break u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            }
            *self.src = &self.src[4..];
        };
        if len == 0 || len > (LZ4_LEGACY_BLOCK as u32 + 65536) {
            return Ok(false);
        }
        let block = self
            .src
            .get(4..4 + len as usize)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "lz4 block cut short"))?;
        self.out.resize(LZ4_LEGACY_BLOCK, 0);
        let n = lz4_flex::block::decompress_into(block, &mut self.out)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.out.truncate(n);
        self.at = 0;
        *self.src = &self.src[4 + len as usize..];
        Ok(true)
    }
}

impl Read for Lz4Legacy<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.out.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// One xz stream, driven by hand: `xz2`'s `bufread` decoder keeps feeding
/// liblzma after the stream's end, which fails on the zero padding that
/// follows it in an initramfs.
struct XzReader<'a, 'b> {
    stream: xz2::stream::Stream,
    src: &'a mut &'b [u8],
    done: bool,
}

impl<'a, 'b> XzReader<'a, 'b> {
    fn new(src: &'a mut &'b [u8]) -> Result<Self, xz2::stream::Error> {
        // No memory limit from liblzma itself: the inflated budget applies,
        // and xz's dictionary is at most 1.5 GiB only in theory (64 MiB in
        // practice for -9); cap it at 256 MiB.
        let stream = xz2::stream::Stream::new_stream_decoder(256 << 20, 0)?;
        Ok(XzReader {
            stream,
            src,
            done: false,
        })
    }
}

impl Read for XzReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        loop {
            let (in0, out0) = (self.stream.total_in(), self.stream.total_out());
            let status = self
                .stream
                .process(self.src, buf, xz2::stream::Action::Run)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let used = (self.stream.total_in() - in0) as usize;
            *self.src = &self.src[used..];
            let made = (self.stream.total_out() - out0) as usize;
            if status == xz2::stream::Status::StreamEnd {
                self.done = true;
            }
            if made > 0 || self.done {
                return Ok(made);
            }
            if self.src.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "xz stream cut short",
                ));
            }
        }
    }
}

/// Read every archive of the image.
pub fn read_all(
    image: &[u8],
    keep: &dyn Fn(&str) -> bool,
    limits: Limits,
) -> Result<Initramfs, InitramfsError> {
    let mut out = Initramfs::default();
    let mut used = 0u64;
    let mut rest = image;
    loop {
        let zeros = rest.iter().take_while(|&&b| b == 0).count();
        rest = &rest[zeros..];
        if rest.is_empty() {
            return Ok(out);
        }
        let offset = (image.len() - rest.len()) as u64;
        let kind = detect(rest, offset)?;
        let before = out.entries.len();
        let start_len = rest.len();
        let mut src = rest;
        let mut sink = Sink {
            out: &mut out,
            keep,
            limits,
        };
        let result = match kind {
            Compression::None => {
                // One archive: what follows its trailer may be compressed.
                let mut r = Budget {
                    inner: &mut src,
                    used: &mut used,
                    limit: limits.max_inflated,
                };
                let mut pos = 0;
                sink.archive(&mut r, &mut pos)
            }
            Compression::Gzip => {
                let d = flate2::bufread::GzDecoder::new(&mut src);
                sink.stream(budget(Tagged(d), &mut used, limits))
            }
            Compression::Xz => {
                let d = XzReader::new(&mut src).map_err(|e| InitramfsError::Decompress {
                    offset,
                    format: kind.name(),
                    detail: e.to_string(),
                })?;
                sink.stream(budget(Tagged(d), &mut used, limits))
            }
            Compression::Zstd => {
                let d = ruzstd::decoding::StreamingDecoder::new(&mut src).map_err(|e| {
                    InitramfsError::Decompress {
                        offset,
                        format: kind.name(),
                        detail: e.to_string(),
                    }
                })?;
                sink.stream(budget(Tagged(d), &mut used, limits))
            }
            Compression::Lz4Frame => {
                let d = lz4_flex::frame::FrameDecoder::new(&mut src);
                sink.stream(budget(Tagged(d), &mut used, limits))
            }
            Compression::Lz4Legacy => {
                src = &src[4..];
                let d = Lz4Legacy {
                    src: &mut src,
                    out: Vec::new(),
                    at: 0,
                };
                sink.stream(budget(Tagged(d), &mut used, limits))
            }
        };
        result.map_err(|e| match e {
            InitramfsError::Decompress { detail, .. } => InitramfsError::Decompress {
                offset,
                format: kind.name(),
                detail,
            },
            e => e,
        })?;
        let len = (start_len - src.len()) as u64;
        if len == 0 {
            return Err(InitramfsError::Unrecognised { offset });
        }
        out.segments.push(Segment {
            offset,
            len,
            compression: kind,
            entries: out.entries.len() - before,
        });
        rest = src;
    }
}

/// Marks a decoder's own errors so they are reported as damaged
/// compressed data, not as bad cpio.
struct Tagged<R>(R);

impl<R: Read> Read for Tagged<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0
            .read(buf)
            .map_err(|e| io::Error::other(DecodeFailed(e.to_string())))
    }
}

fn budget<R: Read>(inner: R, used: &mut u64, limits: Limits) -> Budget<'_, R> {
    Budget {
        inner,
        used,
        limit: limits.max_inflated,
    }
}

/// Where entries go, with the caller's choice of what to keep.
struct Sink<'a> {
    out: &'a mut Initramfs,
    keep: &'a dyn Fn(&str) -> bool,
    limits: Limits,
}

impl Sink<'_> {
    /// One archive, up to and including its trailer.
    fn archive(&mut self, r: &mut impl Read, pos: &mut u64) -> Result<(), InitramfsError> {
        loop {
            let h = cpio::read_header(r, pos)?;
            if h.name == TRAILER {
                return Ok(());
            }
            if self.out.entries.len() >= self.limits.max_entries {
                return Err(InitramfsError::TooManyEntries {
                    limit: self.limits.max_entries,
                });
            }
            let name = normalise(&h.name).to_string();
            let is_file = h.mode & cpio::S_IFMT == cpio::S_IFREG;
            let keep = is_file && (self.keep)(&name);
            if keep && h.size > self.limits.max_kept_file {
                return Err(InitramfsError::FileTooLarge {
                    name,
                    size: h.size,
                    limit: self.limits.max_kept_file,
                });
            }
            let data = cpio::read_data(r, pos, h.size, keep)?;
            self.out.entries.push(Entry {
                name,
                mode: h.mode,
                size: h.size,
                data,
            });
        }
    }

    /// A whole decompressed stream: archives separated by zero padding,
    /// read to the stream's end so its footer is consumed too.
    fn stream(&mut self, mut r: impl Read) -> Result<(), InitramfsError> {
        let mut pos = 0u64;
        loop {
            let mut word = [0u8; 4];
            let n = read_full(&mut r, &mut word).map_err(|e| InitramfsError::from_io(e, pos))?;
            if n == 0 {
                return Ok(());
            }
            if word[..n].iter().all(|&b| b == 0) {
                pos += n as u64;
                continue;
            }
            if n < 4 || &word != b"0707" {
                return Err(InitramfsError::BadCpio {
                    offset: pos,
                    detail: "data after the archive's trailer is not another archive".into(),
                });
            }
            let mut chained = (&word[..]).chain(&mut r);
            self.archive(&mut chained, &mut pos)?;
        }
    }
}

/// Like `read_exact` but returns how much was read at the end of input.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
