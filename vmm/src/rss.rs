//! The monitor's own memory: resident set size minus what the guest's RAM
//! mappings account for (how Firecracker reports its overhead).

use crate::memory::GuestMemory;
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

/// Parse `/proc/self/smaps`: total Rss, and Rss of mappings that start at
/// one of `guest_starts`. Returns (total KiB, guest KiB).
pub fn parse_smaps(smaps: &str, guest_starts: &[u64]) -> (u64, u64) {
    let mut total = 0;
    let mut guest = 0;
    let mut in_guest = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((start, _)) = first.split_once('-') {
            if let Ok(a) = u64::from_str_radix(start, 16) {
                in_guest = guest_starts.contains(&a);
                continue;
            }
        }
        if let Some(rest) = line.strip_prefix("Rss:") {
            let kib: u64 = rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0);
            total += kib;
            if in_guest {
                guest += kib;
            }
        }
    }
    (total, guest)
}

/// KiB resident in this process outside guest RAM.
pub fn beyond_guest_memory(mem: &GuestMemory) -> std::io::Result<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let starts: Vec<u64> = mem
        .iter()
        .filter_map(|r| mem.get_host_address(r.start_addr()).ok().map(|p| p as u64))
        .collect();
    let (total, guest) = parse_smaps(&smaps, &starts);
    Ok(total.saturating_sub(guest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_mappings_are_subtracted() {
        let smaps = "\
7f0000000000-7f0010000000 rw-p 00000000 00:00 0
Size:             262144 kB
Rss:               40000 kB
55d000000000-55d000100000 r-xp 00000000 08:01 1 /usr/bin/ovf-run
Rss:                1200 kB
7fff00000000-7fff00021000 rw-p 00000000 00:00 0 [stack]
Rss:                  12 kB
";
        assert_eq!(parse_smaps(smaps, &[0x7f00_0000_0000]), (41212, 40000));
    }
}
