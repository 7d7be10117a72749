//! A bounded, thread-safe cache of decompressed grains/clusters, which
//! also makes sure each one is inflated by one thread at a time.
//!
//! A guest reads 4 KiB at a time, but a compressed grain is 64 KiB: without
//! a cache each grain would be inflated sixteen times in a row. And when
//! the read-ahead thread and a reader (or two virtio queues) want the same
//! grain, the second waits for the first instead of inflating it again —
//! otherwise a reader catching up with read-ahead would inflate the same
//! grains in lockstep with it. Entries are spread over shards (one `Mutex`
//! each) so parallel readers rarely meet; each shard evicts its least
//! recently used ready entry when over budget.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

const SHARDS: usize = 16;
/// A claim whose owner vanished is taken over after this long.
const WAIT_LIMIT: Duration = Duration::from_secs(10);

pub type Grain = Arc<Vec<u8>>;

enum Slot {
    Ready(Grain, u64),
    /// Some thread is inflating it now.
    Pending,
}

struct Shard {
    slots: HashMap<u64, Slot>,
    bytes: usize,
    tick: u64,
}

pub struct GrainCache {
    shards: Vec<(Mutex<Shard>, Condvar)>,
    shard_budget: usize,
}

/// What a reader should do about one grain.
pub enum Claim<'c> {
    Ready(Grain),
    /// The caller inflates it and hands it over with [`Owned::fulfill`].
    Mine(Owned<'c>),
    /// Another thread is inflating it; ask again with [`GrainCache::wait`]
    /// once your own claims are settled.
    Busy,
}

/// The duty to produce one grain; dropping it unfulfilled releases waiters.
pub struct Owned<'c> {
    cache: &'c GrainCache,
    key: u64,
    done: bool,
}

impl Owned<'_> {
    pub fn fulfill(mut self, data: Grain) {
        self.done = true;
        self.cache.put(self.key, Some(data));
    }
}

impl Drop for Owned<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.cache.put(self.key, None);
        }
    }
}

impl GrainCache {
    /// A cache holding at most about `budget_bytes` of data.
    pub fn new(budget_bytes: usize) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                (
                    Mutex::new(Shard {
                        slots: HashMap::new(),
                        bytes: 0,
                        tick: 0,
                    }),
                    Condvar::new(),
                )
            })
            .collect();
        GrainCache {
            shards,
            shard_budget: (budget_bytes / SHARDS).max(1),
        }
    }

    fn shard(&self, key: u64) -> (MutexGuard<'_, Shard>, &Condvar) {
        // Neighbouring grains land in different shards.
        let (m, c) = &self.shards[(key as usize) % SHARDS];
        (m.lock().unwrap_or_else(|p| p.into_inner()), c)
    }

    fn ready(s: &mut Shard, key: u64) -> Option<Grain> {
        s.tick += 1;
        let tick = s.tick;
        match s.slots.get_mut(&key) {
            Some(Slot::Ready(data, used)) => {
                *used = tick;
                Some(data.clone())
            }
            _ => None,
        }
    }

    /// Never blocks.
    pub fn claim(&self, key: u64) -> Claim<'_> {
        let (mut s, _) = self.shard(key);
        if let Some(d) = Self::ready(&mut s, key) {
            return Claim::Ready(d);
        }
        if s.slots.contains_key(&key) {
            return Claim::Busy;
        }
        s.slots.insert(key, Slot::Pending);
        Claim::Mine(Owned {
            cache: self,
            key,
            done: false,
        })
    }

    /// Wait while another thread inflates `key`; if it gave up, the
    /// caller gets the duty instead.
    pub fn wait(&self, key: u64) -> Claim<'_> {
        let (mut s, cv) = self.shard(key);
        loop {
            if let Some(d) = Self::ready(&mut s, key) {
                return Claim::Ready(d);
            }
            if let std::collections::hash_map::Entry::Vacant(v) = s.slots.entry(key) {
                v.insert(Slot::Pending);
                return Claim::Mine(Owned {
                    cache: self,
                    key,
                    done: false,
                });
            }
            let (guard, timeout) = cv
                .wait_timeout(s, WAIT_LIMIT)
                .unwrap_or_else(|p| p.into_inner());
            s = guard;
            if timeout.timed_out() {
                // Produce it independently rather than hang.
                return Claim::Mine(Owned {
                    cache: self,
                    key,
                    done: true,
                });
            }
        }
    }

    /// Whether `key` is ready or being made (for read-ahead).
    pub fn contains(&self, key: u64) -> bool {
        self.shard(key).0.slots.contains_key(&key)
    }

    fn put(&self, key: u64, data: Option<Grain>) {
        let (mut s, cv) = self.shard(key);
        if let Some(Slot::Ready(old, _)) = s.slots.remove(&key) {
            s.bytes -= old.len();
        }
        if let Some(data) = data.filter(|d| d.len() <= self.shard_budget) {
            s.tick += 1;
            let tick = s.tick;
            s.bytes += data.len();
            s.slots.insert(key, Slot::Ready(data, tick));
            while s.bytes > self.shard_budget {
                // Shards hold a few dozen entries: a linear scan is cheaper
                // than keeping an ordered list up to date on every hit.
                let victim = s
                    .slots
                    .iter()
                    .filter_map(|(k, v)| match v {
                        Slot::Ready(_, used) => Some((*used, *k)),
                        Slot::Pending => None,
                    })
                    .min();
                let Some((_, victim)) = victim else { break };
                if let Some(Slot::Ready(old, _)) = s.slots.remove(&victim) {
                    s.bytes -= old.len();
                }
            }
        }
        drop(s);
        cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(c: &GrainCache, key: u64, len: usize, byte: u8) {
        match c.claim(key) {
            Claim::Mine(o) => o.fulfill(Arc::new(vec![byte; len])),
            _ => panic!("expected to own {key}"),
        }
    }

    fn get(c: &GrainCache, key: u64) -> Option<u8> {
        match c.claim(key) {
            Claim::Ready(d) => Some(d[0]),
            _ => None, // the claim is dropped: released again
        }
    }

    #[test]
    fn evicts_least_recently_used_within_budget() {
        let c = GrainCache::new(SHARDS * 100);
        let key = |i: u64| i * SHARDS as u64; // all in shard 0
        fill(&c, key(0), 40, 0);
        fill(&c, key(1), 40, 1);
        assert_eq!(get(&c, key(0)), Some(0)); // 0 is now newer than 1
        fill(&c, key(2), 40, 2);
        assert_eq!(get(&c, key(1)), None);
        assert_eq!(get(&c, key(0)), Some(0));
        assert_eq!(get(&c, key(2)), Some(2));
        fill(&c, key(3), 1000, 3); // larger than a shard: not kept
        assert_eq!(get(&c, key(3)), None);
    }

    #[test]
    fn second_claimant_waits_for_the_first() {
        let c = Arc::new(GrainCache::new(1 << 20));
        let Claim::Mine(owned) = c.claim(7) else {
            panic!()
        };
        assert!(matches!(c.claim(7), Claim::Busy));
        let c2 = c.clone();
        let waiter = std::thread::spawn(move || match c2.wait(7) {
            Claim::Ready(d) => d[0],
            _ => 0,
        });
        std::thread::sleep(Duration::from_millis(20));
        owned.fulfill(Arc::new(vec![9u8; 8]));
        assert_eq!(waiter.join().unwrap(), 9);
        // An abandoned claim passes the duty on.
        let Claim::Mine(owned) = c.claim(8) else {
            panic!()
        };
        drop(owned);
        assert!(matches!(c.wait(8), Claim::Mine(_)));
    }
}
