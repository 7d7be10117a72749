//! A bounded, thread-safe cache of decompressed grains/clusters.
//!
//! A guest reads 4 KiB at a time, but a compressed grain is 64 KiB: without
//! a cache each grain would be inflated sixteen times in a row. Entries are
//! spread over shards (one `Mutex` each) so parallel readers rarely meet,
//! and each shard evicts its least recently used entry when over budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const SHARDS: usize = 16;

struct Shard {
    entries: HashMap<u64, (Arc<[u8]>, u64)>,
    bytes: usize,
    tick: u64,
}

pub struct GrainCache {
    shards: Vec<Mutex<Shard>>,
    shard_budget: usize,
}

impl GrainCache {
    /// A cache holding at most about `budget_bytes` of data.
    pub fn new(budget_bytes: usize) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    entries: HashMap::new(),
                    bytes: 0,
                    tick: 0,
                })
            })
            .collect();
        GrainCache {
            shards,
            shard_budget: (budget_bytes / SHARDS).max(1),
        }
    }

    fn shard(&self, key: u64) -> &Mutex<Shard> {
        // Neighbouring grains land in different shards.
        &self.shards[(key as usize) % SHARDS]
    }

    pub fn get(&self, key: u64) -> Option<Arc<[u8]>> {
        let mut s = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        s.tick += 1;
        let tick = s.tick;
        s.entries.get_mut(&key).map(|(data, used)| {
            *used = tick;
            data.clone()
        })
    }

    pub fn insert(&self, key: u64, data: Arc<[u8]>) {
        if data.len() > self.shard_budget {
            return;
        }
        let mut s = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        s.tick += 1;
        let tick = s.tick;
        let len = data.len();
        if let Some((old, _)) = s.entries.insert(key, (data, tick)) {
            s.bytes -= old.len();
        }
        s.bytes += len;
        while s.bytes > self.shard_budget {
            // Shards hold a few dozen entries: a linear scan is cheaper
            // than keeping an ordered list up to date on every hit.
            let Some((&victim, _)) = s.entries.iter().min_by_key(|(_, (_, used))| *used) else {
                break;
            };
            if let Some((old, _)) = s.entries.remove(&victim) {
                s.bytes -= old.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_within_budget() {
        let c = GrainCache::new(SHARDS * 100);
        let key = |i: u64| i * SHARDS as u64; // all in shard 0
        c.insert(key(0), Arc::from(vec![0u8; 40]));
        c.insert(key(1), Arc::from(vec![1u8; 40]));
        assert!(c.get(key(0)).is_some()); // 0 is now newer than 1
        c.insert(key(2), Arc::from(vec![2u8; 40]));
        assert!(c.get(key(1)).is_none());
        assert_eq!(c.get(key(0)).unwrap()[0], 0);
        assert_eq!(c.get(key(2)).unwrap()[0], 2);
        c.insert(key(3), Arc::from(vec![3u8; 1000])); // larger than a shard: not kept
        assert!(c.get(key(3)).is_none());
    }
}
