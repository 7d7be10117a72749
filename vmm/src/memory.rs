//! Guest RAM: anonymous, lazily touched mappings around the MMIO hole; or,
//! for a restored VM, private copy-on-write mappings of a snapshot's memory
//! file (pages are read from the file on first touch, and what the guest
//! writes stays in this process: the file is never changed, and any number
//! of VMs can map it at once).

use crate::layout::{FOUR_GIB, MMIO_HOLE_START};
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

pub type GuestMemory = GuestMemoryMmap<()>;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("guest memory of {0} MiB is too small: at least 64 MiB are needed to boot Linux")]
    TooSmall(u64),
    #[error("guest memory of {0} MiB is more than this monitor supports (1 TiB)")]
    TooLarge(u64),
    #[error("cannot map {mib} MiB of guest memory: {source}")]
    Map {
        mib: u64,
        source: vm_memory::mmap::FromRangesError,
    },
    #[error("the snapshot's memory layout ({found}) is not the one of {mib} MiB ({expected})")]
    Layout {
        mib: u64,
        found: String,
        expected: String,
    },
    #[error("cannot map the snapshot's memory file {}: {source}", path.display())]
    MapFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("KVM refused the guest memory region at {addr:#x}: {source}")]
    Register {
        addr: u64,
        source: kvm_ioctls::Error,
    },
}

/// The RAM ranges for `mib` MiB: below the hole, then above 4 GiB.
pub fn ram_ranges(mib: u64) -> Result<Vec<(GuestAddress, usize)>, MemoryError> {
    if mib < 64 {
        return Err(MemoryError::TooSmall(mib));
    }
    if mib > 1 << 20 {
        return Err(MemoryError::TooLarge(mib));
    }
    let bytes = mib << 20;
    if bytes <= MMIO_HOLE_START {
        Ok(vec![(GuestAddress(0), bytes as usize)])
    } else {
        Ok(vec![
            (GuestAddress(0), MMIO_HOLE_START as usize),
            (GuestAddress(FOUR_GIB), (bytes - MMIO_HOLE_START) as usize),
        ])
    }
}

/// Map guest RAM. Pages are only backed when first touched (anonymous,
/// `MAP_NORESERVE`), so a 4 GiB guest that uses 200 MiB costs 200 MiB.
pub fn create(mib: u64) -> Result<GuestMemory, MemoryError> {
    let mem = GuestMemoryMmap::from_ranges(&ram_ranges(mib)?)
        .map_err(|source| MemoryError::Map { mib, source })?;
    exclude_from_core_dumps(&mem);
    Ok(mem)
}

/// Keep guest RAM out of the monitor's core dumps (a crash report must not
/// carry the guest's secrets, nor gigabytes), as QEMU's
/// `dump-guest-core=off` does. The distinct mapping flag also keeps the
/// kernel from merging guest RAM with a neighbouring heap mapping, so the
/// monitor's own memory is measured apart from the guest's ([`crate::rss`]).
fn exclude_from_core_dumps(mem: &GuestMemory) {
    for r in mem.iter() {
        let Ok(host) = mem.get_host_address(r.start_addr()) else {
            continue;
        };
        // SAFETY: the range is exactly one live mapping of `mem`; the
        // advice changes no contents.
        let rc = unsafe { libc::madvise(host.cast(), r.len() as usize, libc::MADV_DONTDUMP) };
        if rc != 0 {
            tracing::debug!(
                "MADV_DONTDUMP on guest memory: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

fn describe(ranges: &[(u64, u64)]) -> String {
    ranges
        .iter()
        .map(|(a, l)| format!("{:#x}+{} MiB", a, l >> 20))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Map a snapshot's memory file privately: `regions` must be the layout of
/// `mib` MiB (the same VM shape) and lie inside the file.
pub fn from_file(
    mib: u64,
    path: &std::path::Path,
    regions: &[snapshot::MemoryRegion],
) -> Result<GuestMemory, MemoryError> {
    use vm_memory::mmap::{GuestRegionMmap, MmapRegionBuilder};
    let expected: Vec<(u64, u64)> = ram_ranges(mib)?
        .iter()
        .map(|(a, l)| (a.0, *l as u64))
        .collect();
    let found: Vec<(u64, u64)> = regions.iter().map(|r| (r.guest_addr, r.size)).collect();
    if found != expected {
        return Err(MemoryError::Layout {
            mib,
            found: describe(&found),
            expected: describe(&expected),
        });
    }
    let map_err = |source: std::io::Error| MemoryError::MapFile {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(map_err)?;
    let len = file.metadata().map_err(map_err)?.len();
    let mut mapped = Vec::new();
    for r in regions {
        if r.file_offset
            .checked_add(r.size)
            .is_none_or(|end| end > len)
        {
            return Err(map_err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "the file is {len} bytes; guest memory at {:#x} needs bytes {}..{}",
                    r.guest_addr,
                    r.file_offset,
                    r.file_offset.saturating_add(r.size)
                ),
            )));
        }
        let fo = vm_memory::FileOffset::new(file.try_clone().map_err(map_err)?, r.file_offset);
        let mapping = MmapRegionBuilder::new(r.size as usize)
            .with_file_offset(fo)
            .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
            .with_mmap_flags(libc::MAP_PRIVATE | libc::MAP_NORESERVE)
            .build()
            .map_err(|e| map_err(std::io::Error::other(e.to_string())))?;
        mapped.push(
            GuestRegionMmap::new(mapping, GuestAddress(r.guest_addr))
                .ok_or_else(|| map_err(std::io::Error::other("region wraps around")))?,
        );
    }
    let mem = GuestMemoryMmap::from_regions(mapped)
        .map_err(|e| map_err(std::io::Error::other(e.to_string())))?;
    exclude_from_core_dumps(&mem);
    Ok(mem)
}

/// Tell KVM about every region.
pub fn register(vm: &VmFd, mem: &GuestMemory) -> Result<(), MemoryError> {
    for (slot, region) in mem.iter().enumerate() {
        let host =
            mem.get_host_address(region.start_addr())
                .map_err(|_| MemoryError::Register {
                    addr: region.start_addr().0,
                    source: kvm_ioctls::Error::new(libc::EFAULT),
                })?;
        let r = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: the mapping lives as long as `mem`, which the VM owns and
        // drops only after the VM file descriptor.
        unsafe { vm.set_user_memory_region(r) }.map_err(|source| MemoryError::Register {
            addr: region.start_addr().0,
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_around_the_hole() {
        assert_eq!(ram_ranges(512).unwrap(), vec![(GuestAddress(0), 512 << 20)]);
        let r = ram_ranges(4096).unwrap();
        assert_eq!(r[0], (GuestAddress(0), 0xc000_0000));
        assert_eq!(r[1], (GuestAddress(FOUR_GIB), 0x4000_0000));
        assert!(ram_ranges(16).is_err());
    }
}
