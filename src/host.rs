//! What this host can give a guest: its CPU count and memory. The launch
//! plan clamps or refuses guest sizes above these.

/// The host's resources, as the plan sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    /// Online CPUs usable by this process.
    pub cpus: u32,
    /// Total memory in bytes (guest memory is allocated lazily, so the total,
    /// not what is free now, is the bound).
    pub memory_bytes: u64,
}

impl HostLimits {
    /// Read the limits of this machine: CPUs from the affinity mask,
    /// memory from `/proc/meminfo` (`MemTotal`). Unknown values do not
    /// limit anything.
    pub fn of_this_host() -> Self {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(u32::MAX);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| parse_mem_total(&m))
            .unwrap_or(u64::MAX);
        HostLimits { cpus, memory_bytes }
    }

    /// No limits (tests, and planning for another machine).
    pub fn unlimited() -> Self {
        HostLimits {
            cpus: u32::MAX,
            memory_bytes: u64::MAX,
        }
    }
}

/// `MemTotal:  16318412 kB` → bytes.
fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_total() {
        let m = "MemTotal:       16318412 kB\nMemFree:  1 kB\n";
        assert_eq!(parse_mem_total(m), Some(16318412 * 1024));
        assert_eq!(parse_mem_total("nothing"), None);
    }

    #[test]
    fn this_host_has_some() {
        let h = HostLimits::of_this_host();
        assert!(h.cpus >= 1 && h.memory_bytes > 1 << 20);
    }
}
