//! The read path shared by every format that maps fixed-size units (VMDK
//! grains, qcow2 clusters) to places in the image file.
//!
//! A format only answers "where is unit N" ([`UnitMap::locate`]) and "turn
//! these stored bytes into unit N" ([`UnitMap::decompress`]). This module
//! does the rest the same way for all of them: holes and zero units never
//! touch storage; uncompressed runs that are contiguous in the file become
//! one `pread`; compressed units that lie near each other are fetched with
//! one `pread` and inflated in parallel straight into the caller's buffer;
//! a unit only partly wanted is inflated once and kept in the grain cache,
//! so a guest reading 4 KiB at a time inflates each grain once.

use crate::byte_range::ByteRange;
use crate::error::DiskError;
use crate::grain_cache::GrainCache;
use block_source::{check_range, BlockSource};
use std::io;
use std::sync::Arc;

/// Where one unit's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Reads as zeros: never written, or explicitly zeroed.
    Zero,
    /// Stored as-is at this byte offset of the image.
    Data { at: u64 },
    /// Stored compressed starting at `at`, in at most `max_len` bytes.
    Compressed { at: u64, max_len: u64 },
}

pub trait UnitMap: Send + Sync {
    /// Bytes per unit (a power of two).
    fn unit_size(&self) -> u64;
    /// Virtual disk size in bytes.
    fn capacity(&self) -> u64;
    fn locate(&self, index: u64) -> Result<Unit, DiskError>;
    /// Inflate unit `index` whose stored bytes begin at `stored[0]` into
    /// `out` (one unit long). Bytes past the unit's end in `stored` are
    /// other data and must be ignored.
    fn decompress(
        &self,
        index: u64,
        at: u64,
        stored: &[u8],
        out: &mut [u8],
    ) -> Result<(), DiskError>;
}

/// Compressed bytes fetched per `pread` at most.
const MAX_SPAN: u64 = 8 << 20;
/// Gap between two compressed units still fetched in the same `pread`.
const MAX_GAP: u64 = 64 << 10;
/// Decompressed units kept for partial reads.
const CACHE_BYTES: usize = 64 << 20;

pub struct SparseReader<M: UnitMap> {
    map: M,
    image: Arc<dyn ByteRange>,
    cache: GrainCache,
    threads: usize,
}

/// One stretch of a request, in buffer order.
enum Piece {
    Zero,
    Data {
        at: u64,
    },
    Cached {
        data: Arc<[u8]>,
        inner: usize,
    },
    Compressed {
        index: u64,
        at: u64,
        max_len: u64,
        inner: usize,
    },
}

/// One compressed unit this request still needs.
struct Job<'a> {
    index: u64,
    at: u64,
    max_len: u64,
    /// Where the wanted bytes go.
    dst: &'a mut [u8],
    /// Offset of `dst[0]` inside the unit.
    inner: usize,
}

impl<M: UnitMap> SparseReader<M> {
    pub fn new(map: M, image: Arc<dyn ByteRange>) -> Self {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(8);
        SparseReader {
            map,
            image,
            cache: GrainCache::new(CACHE_BYTES),
            threads,
        }
    }

    pub fn map(&self) -> &M {
        &self.map
    }

    fn read_into(&self, buf: &mut [u8], offset: u64) -> Result<(), DiskError> {
        let unit = self.map.unit_size();
        // Plan first (pieces in buffer order, adjacent stored data merged),
        // then hand each piece its own part of `buf`.
        let mut plan: Vec<(usize, Piece)> = Vec::new();
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let index = pos / unit;
            let inner = (pos % unit) as usize;
            let n = ((unit as usize) - inner).min(buf.len() - done);
            let piece = match self.map.locate(index)? {
                Unit::Zero => Piece::Zero,
                Unit::Data { at } => Piece::Data {
                    at: at + inner as u64,
                },
                Unit::Compressed { at, max_len } => match self.cache.get(index) {
                    Some(data) => Piece::Cached { data, inner },
                    None => Piece::Compressed {
                        index,
                        at,
                        max_len,
                        inner,
                    },
                },
            };
            match (plan.last_mut(), &piece) {
                (Some((len, Piece::Data { at: prev })), Piece::Data { at })
                    if *prev + *len as u64 == *at =>
                {
                    *len += n
                }
                (Some((len, Piece::Zero)), Piece::Zero) => *len += n,
                _ => plan.push((n, piece)),
            }
            done += n;
        }
        let mut jobs: Vec<Job> = Vec::new();
        let mut rest = buf;
        for (len, piece) in plan {
            let (dst, tail) = std::mem::take(&mut rest).split_at_mut(len);
            rest = tail;
            match piece {
                Piece::Zero => dst.fill(0),
                Piece::Data { at } => self.read_data(at, dst)?,
                Piece::Cached { data, inner } => {
                    copy_from_unit(&data, inner, dst, &self.image.name())?
                }
                Piece::Compressed {
                    index,
                    at,
                    max_len,
                    inner,
                } => jobs.push(Job {
                    index,
                    at,
                    max_len,
                    dst,
                    inner,
                }),
            }
        }
        if jobs.is_empty() {
            return Ok(());
        }
        jobs.sort_by_key(|j| j.at);
        self.run_jobs(jobs)
    }

    fn read_data(&self, at: u64, dst: &mut [u8]) -> Result<(), DiskError> {
        self.image.read_at(dst, at).map_err(|e| {
            DiskError::io(
                &self.image.name(),
                format!("{} data bytes at offset {at}", dst.len()),
                e,
            )
        })
    }

    /// Fetch compressed units in as few `pread`s as possible, then inflate
    /// them, on several threads when there are enough of them.
    fn run_jobs(&self, mut jobs: Vec<Job>) -> Result<(), DiskError> {
        let file_len = self.image.len();
        let mut groups: Vec<(u64, Vec<u8>, Vec<Job>)> = Vec::new();
        let mut start = 0;
        while start < jobs.len() {
            let first = jobs[start].at;
            let mut end = span_end(&jobs[start], file_len);
            let mut stop = start + 1;
            while stop < jobs.len() {
                let j = &jobs[stop];
                let e = span_end(j, file_len).max(end);
                if j.at > end.saturating_add(MAX_GAP) || e - first > MAX_SPAN {
                    break;
                }
                end = e;
                stop += 1;
            }
            let mut bytes = vec![0u8; (end - first) as usize];
            self.image.read_at(&mut bytes, first).map_err(|e| {
                DiskError::io(
                    &self.image.name(),
                    format!("compressed data at offset {first}"),
                    e,
                )
            })?;
            let rest = jobs.split_off(stop);
            groups.push((first, bytes, std::mem::replace(&mut jobs, rest)));
            start = 0;
        }
        let mut work: Vec<(&[u8], u64, Job)> = Vec::new();
        for (first, bytes, group) in &mut groups {
            for job in group.drain(..) {
                let from = (job.at - *first) as usize;
                work.push((&bytes[from..], job.at, job));
            }
        }
        if work.len() < 4 || self.threads < 2 {
            return work
                .into_iter()
                .try_for_each(|(stored, at, job)| self.inflate_job(stored, at, job));
        }
        let per = work.len().div_ceil(self.threads);
        let mut chunks: Vec<Vec<(&[u8], u64, Job)>> = Vec::new();
        while !work.is_empty() {
            let tail = work.split_off(work.len().saturating_sub(per));
            chunks.push(tail);
        }
        std::thread::scope(|s| {
            let mut handles = Vec::new();
            let mine = chunks.pop().unwrap_or_default();
            for chunk in chunks {
                handles.push(s.spawn(move || {
                    chunk
                        .into_iter()
                        .try_for_each(|(stored, at, job)| self.inflate_job(stored, at, job))
                }));
            }
            let mut result = mine
                .into_iter()
                .try_for_each(|(stored, at, job)| self.inflate_job(stored, at, job));
            for h in handles {
                let r = h.join().unwrap_or_else(|_| {
                    Err(DiskError::malformed(
                        &self.image.name(),
                        "disk",
                        0,
                        "inflate worker panicked",
                    ))
                });
                if result.is_ok() {
                    result = r;
                }
            }
            result
        })
    }

    fn inflate_job(&self, stored: &[u8], at: u64, job: Job) -> Result<(), DiskError> {
        let unit = self.map.unit_size() as usize;
        if job.inner == 0 && job.dst.len() == unit {
            // Wanted whole: inflate straight into place, nothing to keep.
            return self.map.decompress(job.index, at, stored, job.dst);
        }
        let mut full = vec![0u8; unit];
        self.map.decompress(job.index, at, stored, &mut full)?;
        let full: Arc<[u8]> = Arc::from(full);
        copy_from_unit(&full, job.inner, job.dst, &self.image.name())?;
        self.cache.insert(job.index, full);
        Ok(())
    }
}

fn span_end(job: &Job, file_len: u64) -> u64 {
    job.at.saturating_add(job.max_len).min(file_len).max(job.at)
}

/// Copy the wanted part of a whole decompressed unit.
fn copy_from_unit(data: &[u8], inner: usize, dst: &mut [u8], name: &str) -> Result<(), DiskError> {
    match data.get(inner..inner + dst.len()) {
        Some(src) => {
            dst.copy_from_slice(src);
            Ok(())
        }
        None => Err(DiskError::malformed(
            name,
            "disk",
            0,
            "decompressed unit is shorter than expected",
        )),
    }
}

impl<M: UnitMap> BlockSource for SparseReader<M> {
    fn capacity(&self) -> u64 {
        self.map.capacity()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(self.map.capacity(), offset, buf.len())?;
        self.read_into(buf, offset).map_err(io::Error::from)
    }
}
