//! Remembers verified packages so the next start does not hash gigabytes
//! again. A package is identified by device, inode, size, modification and
//! change time of every file it is made of (one `.ova`, or an `.ovf` and
//! its files and chunks), plus a SHA-256 of three 64 KiB samples of each
//! (start, middle, end): any change to any of them, or different trust
//! options, misses. The change time (ctime) cannot be set back by a user,
//! so bytes changed with the mtime put back (`touch -d`) are caught; the
//! samples catch a file swapped in by a filesystem that keeps times.

use crate::package::Package;
use sha2::{Digest, Sha256};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

pub struct VerifyCache {
    dir: PathBuf,
}

impl VerifyCache {
    /// `$XDG_CACHE_HOME/ovf-run/verified`, else `~/.cache/ovf-run/verified`.
    pub fn default_location() -> Option<VerifyCache> {
        Some(VerifyCache {
            dir: crate::cache_dir()?.join("verified"),
        })
    }

    pub fn at(dir: &Path) -> VerifyCache {
        VerifyCache {
            dir: dir.to_path_buf(),
        }
    }

    /// The identity of the package's files and of the options that decided trust.
    pub fn key(pkg: &Package, options_fingerprint: &str) -> Option<String> {
        let mut key = format!("options={options_fingerprint}\n");
        for p in crate::own_files::package_files(pkg) {
            let Ok(m) = std::fs::metadata(&p) else {
                key.push_str(&format!("{} missing\n", p.display()));
                continue;
            };
            key.push_str(&format!(
                "{} dev={} ino={} size={} mtime={}.{} ctime={}.{} sample={}\n",
                p.display(),
                m.dev(),
                m.ino(),
                m.size(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
                sample_digest(&p, m.size())?
            ));
        }
        Some(key)
    }

    fn entry_path(&self, pkg: &Package) -> PathBuf {
        let canonical = pkg.path.canonicalize().unwrap_or_else(|_| pkg.path.clone());
        let name = hex::encode(Sha256::digest(canonical.as_os_str().as_encoded_bytes()));
        self.dir.join(name)
    }

    pub fn is_verified(&self, pkg: &Package, options_fingerprint: &str) -> bool {
        let Some(key) = Self::key(pkg, options_fingerprint) else {
            return false;
        };
        std::fs::read_to_string(self.entry_path(pkg)).is_ok_and(|stored| stored == key)
    }

    /// Record a successful verification. Failures to write are not errors:
    /// the cache only saves time.
    pub fn remember(&self, pkg: &Package, options_fingerprint: &str) {
        let Some(key) = Self::key(pkg, options_fingerprint) else {
            return;
        };
        if std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        let path = self.entry_path(pkg);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, key).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
}

/// Bytes hashed at each of a file's three sample places.
const SAMPLE: u64 = 64 << 10;

/// SHA-256 of the first, middle and last 64 KiB of a regular file.
pub fn sample_digest(path: &Path, size: u64) -> Option<String> {
    let file = crate::regular_file::open_regular(path).ok()?.ok()?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; SAMPLE as usize];
    for at in [0, size / 2, size.saturating_sub(SAMPLE)] {
        let n = SAMPLE.min(size.saturating_sub(at)) as usize;
        file.read_exact_at(&mut buf[..n], at).ok()?;
        hash.update(&buf[..n]);
    }
    Some(hex::encode(hash.finalize()))
}
