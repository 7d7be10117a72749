//! A window onto part of a disk: a partition, or the extents of an LVM volume.
//!
//! Filesystem readers take a [`BlockSource`] that starts at byte 0 of the
//! filesystem; partitions and logical volumes are just remappings of the
//! parent disk, so one small type covers both without copying any data.

use block_source::{check_range, BlockSource};
use std::io;
use std::sync::Arc;

/// One contiguous run: `len` bytes of the view at `view_offset` live at
/// `parent_offset` in the parent source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub view_offset: u64,
    pub parent_offset: u64,
    pub len: u64,
}

/// A read-only view made of segments of a parent source, laid end to end.
pub struct RegionView {
    parent: Arc<dyn BlockSource>,
    segments: Vec<Segment>,
    capacity: u64,
}

impl RegionView {
    /// A single contiguous slice `[start, start+len)` of `parent`. Slices
    /// that stick out of the parent are clipped, so a lying partition table
    /// gives short filesystems, not out-of-bounds reads.
    pub fn slice(parent: Arc<dyn BlockSource>, start: u64, len: u64) -> Self {
        let cap = parent.capacity();
        let start = start.min(cap);
        let len = len.min(cap - start);
        Self::from_segments(
            parent,
            vec![Segment {
                view_offset: 0,
                parent_offset: start,
                len,
            }],
        )
    }

    /// Segments must be given in view order and be contiguous in the view;
    /// each is clipped to the parent.
    pub fn from_segments(parent: Arc<dyn BlockSource>, segments: Vec<Segment>) -> Self {
        let cap = parent.capacity();
        let mut out = Vec::with_capacity(segments.len());
        let mut pos = 0u64;
        for s in segments {
            if s.view_offset != pos || s.parent_offset >= cap {
                break;
            }
            let len = s.len.min(cap - s.parent_offset);
            if len == 0 {
                break;
            }
            out.push(Segment {
                view_offset: pos,
                parent_offset: s.parent_offset,
                len,
            });
            pos += len;
            if len < s.len {
                break;
            }
        }
        RegionView {
            parent,
            segments: out,
            capacity: pos,
        }
    }
}

impl BlockSource for RegionView {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(self.capacity, offset, buf.len())?;
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let idx = self
                .segments
                .partition_point(|s| s.view_offset + s.len <= pos);
            let seg = self.segments.get(idx).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read outside the volume's segments",
                )
            })?;
            let within = pos - seg.view_offset;
            let n = ((seg.len - within) as usize).min(buf.len() - done);
            self.parent
                .read_at(&mut buf[done..done + n], seg.parent_offset + within)?;
            done += n;
        }
        Ok(())
    }
}

/// Adapter so `ext4-view` can read through any block source.
pub struct Ext4Reader(pub Arc<dyn BlockSource>);

impl ext4_view::Ext4Read for Ext4Reader {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        self.0
            .read_at(dst, start_byte)
            .map_err(|e| Box::new(e) as _)
    }
}

/// Read `len` bytes at `offset`, or `None` when the source is too small.
pub fn read_vec(src: &dyn BlockSource, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    check_range(src.capacity(), offset, len)?;
    let mut v = vec![0u8; len];
    src.read_at(&mut v, offset)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use block_source::MemorySource;

    fn parent() -> Arc<dyn BlockSource> {
        Arc::new(MemorySource::new((0..100u8).collect(), true))
    }

    #[test]
    fn slice_reads_and_clips() {
        let v = RegionView::slice(parent(), 90, 50);
        assert_eq!(v.capacity(), 10);
        let mut b = [0u8; 3];
        v.read_at(&mut b, 2).unwrap();
        assert_eq!(b, [92, 93, 94]);
        assert!(v.read_at(&mut b, 8).is_err());
    }

    #[test]
    fn segments_stitch_across_boundaries() {
        let v = RegionView::from_segments(
            parent(),
            vec![
                Segment {
                    view_offset: 0,
                    parent_offset: 50,
                    len: 2,
                },
                Segment {
                    view_offset: 2,
                    parent_offset: 10,
                    len: 3,
                },
            ],
        );
        assert_eq!(v.capacity(), 5);
        let mut b = [0u8; 5];
        v.read_at(&mut b, 0).unwrap();
        assert_eq!(b, [50, 51, 10, 11, 12]);
    }

    #[test]
    fn non_contiguous_segments_are_cut() {
        let v = RegionView::from_segments(
            parent(),
            vec![
                Segment {
                    view_offset: 0,
                    parent_offset: 0,
                    len: 4,
                },
                Segment {
                    view_offset: 9,
                    parent_offset: 0,
                    len: 4,
                },
            ],
        );
        assert_eq!(v.capacity(), 4);
    }
}
