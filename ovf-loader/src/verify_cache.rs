//! Remembers verified packages so the next start does not hash gigabytes
//! again. A package is identified by device, inode, size and modification
//! time of every file it is made of (one `.ova`, or an `.ovf` and its
//! files): any change to any of them, or different trust options, misses.

use crate::package::Package;
use sha2::{Digest, Sha256};
use std::os::unix::fs::MetadataExt;
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
        let mut paths = vec![pkg.path.clone()];
        if pkg.kind == crate::package::PackageKind::Ovf {
            let base = pkg.path.parent().unwrap_or(Path::new("."));
            paths.extend(pkg.file_names().into_iter().map(|n| base.join(n)));
        }
        let mut key = format!("options={options_fingerprint}\n");
        for p in paths {
            let m = std::fs::metadata(&p).ok()?;
            key.push_str(&format!(
                "{} dev={} ino={} size={} mtime={}.{}\n",
                p.display(),
                m.dev(),
                m.ino(),
                m.size(),
                m.mtime(),
                m.mtime_nsec()
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
