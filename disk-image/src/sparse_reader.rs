//! The read path shared by every format that maps fixed-size units (VMDK
//! grains, qcow2 clusters) to places in the image file.
//!
//! A format only answers "where is unit N" ([`UnitMap::locate`]) and "turn
//! these stored bytes into unit N" ([`UnitMap::decompress`]). This module
//! does the rest the same way for all of them: holes and zero units never
//! touch storage; uncompressed runs that are contiguous in the file become
//! one `pread`; compressed units that lie near each other are fetched with
//! one `pread` and inflated in parallel; inflated units are kept in the
//! grain cache, so a guest reading 4 KiB at a time inflates each grain once;
//! and when reads are sequential, a read-ahead thread inflates the next
//! units while the guest consumes the current ones.

use crate::byte_range::ByteRange;
use crate::error::DiskError;
use crate::grain_cache::{Claim, Grain, GrainCache, Owned};
use block_source::{check_range, BlockSource};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;

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
    /// How many units from `index` on are known to read as zeros without
    /// looking at each (a missing grain table or L2 table covers a whole
    /// span); 0 when unit `index` must be located to know.
    fn zero_span(&self, _index: u64) -> u64 {
        0
    }
    /// Whether any unit may be compressed; when not, sequential reads
    /// start no read-ahead thread (plain `pread`s gain nothing from it).
    fn may_compress(&self) -> bool {
        true
    }
}

/// Compressed bytes fetched per `pread` at most.
const MAX_SPAN: u64 = 8 << 20;
/// Gap between two compressed units still fetched in the same `pread`.
const MAX_GAP: u64 = 64 << 10;
/// Decompressed units kept (bounded memory whatever the image says).
const CACHE_BYTES: usize = 64 << 20;
/// How far ahead of a sequential reader units are inflated.
const READ_AHEAD: u64 = 4 << 20;

/// Unit indexes stay below 2^41 (capacity 2^50, units of 512 bytes or
/// more), so sources sharing one cache get key ranges this far apart.
const KEY_BITS: u32 = 42;

/// One grain cache (one memory budget) shared by several sources, e.g.
/// the extents of one VMDK descriptor: however many extents a descriptor
/// names, their inflated grains together stay within one budget.
pub struct SharedCache {
    cache: Arc<GrainCache>,
    next: AtomicU64,
}

impl SharedCache {
    pub fn new() -> Self {
        SharedCache {
            cache: Arc::new(GrainCache::new(CACHE_BYTES)),
            next: AtomicU64::new(0),
        }
    }

    /// A fresh key range for one more source.
    fn key_base(&self) -> u64 {
        (self.next.fetch_add(1, Ordering::Relaxed) & ((1 << (64 - KEY_BITS)) - 1)) << KEY_BITS
    }
}

impl Default for SharedCache {
    fn default() -> Self {
        Self::new()
    }
}

struct Inner<M: UnitMap> {
    map: M,
    image: Arc<dyn ByteRange>,
    cache: Arc<GrainCache>,
    /// Added to unit indexes to make this source's cache keys.
    key_base: u64,
    threads: usize,
}

pub struct SparseReader<M: UnitMap + 'static> {
    inner: Arc<Inner<M>>,
    /// End of the previous read: a read starting there is sequential.
    last_end: AtomicU64,
    /// Read-ahead has been asked for up to here.
    ahead_until: AtomicU64,
    /// Feeds the read-ahead thread, started on the first sequential read;
    /// the thread is stopped and joined when the reader is dropped.
    ahead: Mutex<Option<ReadAhead>>,
}

struct ReadAhead {
    requests: Sender<(u64, u64)>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// One stretch of a request, in buffer order.
enum Piece<'c> {
    Zero,
    Data {
        at: u64,
    },
    Ready {
        data: Grain,
        inner: usize,
    },
    Mine {
        owned: Owned<'c>,
        index: u64,
        at: u64,
        max_len: u64,
        inner: usize,
    },
    Busy {
        index: u64,
        at: u64,
        max_len: u64,
        inner: usize,
    },
}

/// One compressed unit to inflate: the claim, and where its wanted bytes
/// go (nothing, for read-ahead).
struct Job<'a, 'c> {
    owned: Owned<'c>,
    index: u64,
    at: u64,
    max_len: u64,
    dst: &'a mut [u8],
    inner: usize,
}

impl<M: UnitMap + 'static> SparseReader<M> {
    pub fn new(map: M, image: Arc<dyn ByteRange>) -> Self {
        Self::build(map, image, Arc::new(GrainCache::new(CACHE_BYTES)), 0)
    }

    /// A reader whose inflated units count against `shared`'s budget.
    pub fn with_cache(map: M, image: Arc<dyn ByteRange>, shared: &SharedCache) -> Self {
        Self::build(map, image, shared.cache.clone(), shared.key_base())
    }

    fn build(map: M, image: Arc<dyn ByteRange>, cache: Arc<GrainCache>, key_base: u64) -> Self {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(8);
        SparseReader {
            inner: Arc::new(Inner {
                map,
                image,
                cache,
                key_base,
                threads,
            }),
            last_end: AtomicU64::new(u64::MAX),
            ahead_until: AtomicU64::new(0),
            ahead: Mutex::new(None),
        }
    }

    pub fn map(&self) -> &M {
        &self.inner.map
    }

    /// On a sequential read, ask the read-ahead thread for what follows.
    fn read_ahead(&self, offset: u64, len: u64) {
        let end = offset + len;
        if !self.inner.map.may_compress() {
            return;
        }
        if self.last_end.swap(end, Ordering::Relaxed) != offset {
            return;
        }
        let capacity = self.inner.map.capacity();
        let want = end.saturating_add(READ_AHEAD).min(capacity);
        let from = self.ahead_until.load(Ordering::Relaxed).max(end);
        // Ask in steps of a quarter window, not on every small read.
        if want <= from || want - from < READ_AHEAD / 4 {
            return;
        }
        self.ahead_until.store(want, Ordering::Relaxed);
        let mut ahead = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
        if ahead.is_none() {
            let (tx, rx) = channel::<(u64, u64)>();
            let weak: Weak<Inner<M>> = Arc::downgrade(&self.inner);
            let stop = Arc::new(AtomicBool::new(false));
            let stopped = stop.clone();
            let spawned = std::thread::Builder::new()
                .name("disk-read-ahead".into())
                .spawn(move || {
                    thread_filter::install_or_log(thread_filter::Kind::ReadAhead);
                    while let Ok((from, to)) = rx.recv() {
                        if stopped.load(Ordering::Relaxed) {
                            break;
                        }
                        let Some(inner) = weak.upgrade() else { break };
                        inner.prefetch(from, to);
                    }
                });
            let Ok(thread) = spawned else { return };
            *ahead = Some(ReadAhead {
                requests: tx,
                stop,
                thread,
            });
        }
        if let Some(a) = ahead.as_ref() {
            let _ = a.requests.send((from, want));
        }
    }
}

impl<M: UnitMap + 'static> Drop for SparseReader<M> {
    /// Stop the read-ahead thread and wait for it (at most one prefetch
    /// window of inflating), so no thread outlives the disk.
    fn drop(&mut self) {
        let ahead = self.ahead.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = ahead.take() {
            a.stop.store(true, Ordering::Relaxed);
            drop(a.requests);
            let _ = a.thread.join();
        }
    }
}

impl<M: UnitMap> Inner<M> {
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
                Unit::Compressed { at, max_len } => match self.cache.claim(self.key_base | index) {
                    Claim::Ready(data) => Piece::Ready { data, inner },
                    Claim::Mine(owned) => Piece::Mine {
                        owned,
                        index,
                        at,
                        max_len,
                        inner,
                    },
                    Claim::Busy => Piece::Busy {
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
        let mut busy = Vec::new();
        let mut rest = buf;
        for (len, piece) in plan {
            let (dst, tail) = std::mem::take(&mut rest).split_at_mut(len);
            rest = tail;
            match piece {
                Piece::Zero => dst.fill(0),
                Piece::Data { at } => self.read_data(at, dst)?,
                Piece::Ready { data, inner } => {
                    copy_from_unit(&data, inner, dst, &self.image.name())?
                }
                Piece::Mine {
                    owned,
                    index,
                    at,
                    max_len,
                    inner,
                } => jobs.push(Job {
                    owned,
                    index,
                    at,
                    max_len,
                    dst,
                    inner,
                }),
                Piece::Busy {
                    index,
                    at,
                    max_len,
                    inner,
                } => busy.push((index, at, max_len, inner, dst)),
            }
        }
        self.run_jobs(jobs, true)?;
        // Only now, with every claim of ours settled, wait for others'.
        for (index, at, max_len, inner, dst) in busy {
            match self.cache.wait(self.key_base | index) {
                Claim::Ready(data) => copy_from_unit(&data, inner, dst, &self.image.name())?,
                Claim::Mine(owned) => self.run_jobs(
                    vec![Job {
                        owned,
                        index,
                        at,
                        max_len,
                        dst,
                        inner,
                    }],
                    false,
                )?,
                Claim::Busy => unreachable!("wait never answers Busy"),
            }
        }
        Ok(())
    }

    /// Inflate the compressed units of `[from, to)` into the cache.
    fn prefetch(&self, from: u64, to: u64) {
        let unit = self.map.unit_size();
        let mut jobs = Vec::new();
        for index in from / unit..to.div_ceil(unit) {
            if self.cache.contains(self.key_base | index) {
                continue;
            }
            if let Ok(Unit::Compressed { at, max_len }) = self.map.locate(index) {
                if let Claim::Mine(owned) = self.cache.claim(self.key_base | index) {
                    jobs.push(Job {
                        owned,
                        index,
                        at,
                        max_len,
                        dst: &mut [],
                        inner: 0,
                    });
                }
            }
        }
        // On several threads: the reader waits for these units, so one
        // read-ahead thread alone would make a sequential read run at the
        // speed of one core. Errors surface when the guest reads those
        // units itself.
        let _ = self.run_jobs(jobs, true);
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
    fn run_jobs(&self, mut jobs: Vec<Job>, parallel: bool) -> Result<(), DiskError> {
        if jobs.is_empty() {
            return Ok(());
        }
        jobs.sort_by_key(|j| j.at);
        let file_len = self.image.len();
        let mut groups: Vec<(u64, Vec<u8>, Vec<Job>)> = Vec::new();
        while !jobs.is_empty() {
            let first = jobs[0].at;
            let mut end = span_end(&jobs[0], file_len);
            let mut stop = 1;
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
        }
        let mut work: Vec<(&[u8], Job)> = Vec::new();
        for (first, bytes, group) in &mut groups {
            for job in group.drain(..) {
                let from = (job.at - *first) as usize;
                work.push((&bytes[from..], job));
            }
        }
        if !parallel || work.len() < 4 || self.threads < 2 {
            return work
                .into_iter()
                .try_for_each(|(stored, job)| self.inflate_job(stored, job));
        }
        let per = work.len().div_ceil(self.threads);
        let mut chunks: Vec<Vec<(&[u8], Job)>> = Vec::new();
        while !work.is_empty() {
            let tail = work.split_off(work.len().saturating_sub(per));
            chunks.push(tail);
        }
        std::thread::scope(|s| {
            let mine = chunks.pop().unwrap_or_default();
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .into_iter()
                            .try_for_each(|(stored, job)| self.inflate_job(stored, job))
                    })
                })
                .collect();
            let mut result = mine
                .into_iter()
                .try_for_each(|(stored, job)| self.inflate_job(stored, job));
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

    fn inflate_job(&self, stored: &[u8], job: Job) -> Result<(), DiskError> {
        let mut full = vec![0u8; self.map.unit_size() as usize];
        self.map.decompress(job.index, job.at, stored, &mut full)?;
        copy_from_unit(&full, job.inner, job.dst, &self.image.name())?;
        job.owned.fulfill(Arc::new(full));
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

impl<M: UnitMap + 'static> BlockSource for SparseReader<M> {
    fn capacity(&self) -> u64 {
        self.inner.map.capacity()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(self.inner.map.capacity(), offset, buf.len())?;
        self.read_ahead(offset, buf.len() as u64);
        self.inner.read_into(buf, offset).map_err(io::Error::from)
    }

    fn data_range(&self, offset: u64) -> io::Result<Option<(u64, u64)>> {
        crate::data_ranges::sparse_data_range(&self.inner.map, offset)
    }
}
