//! The manifest (`.mf`): one digest per package file.
//!
//! Lines look like `SHA256(disk.vmdk)= 3f…` (ovftool) or
//! `SHA1 (disk.vmdk) = 3f…` (other tools); SHA1, SHA256 and SHA512 exist.
//! Hashing streams the bytes in large blocks straight from the package.

use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use std::io;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Algorithm {
    #[serde(rename = "SHA1")]
    Sha1,
    #[serde(rename = "SHA256")]
    Sha256,
    #[serde(rename = "SHA512")]
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Some(Algorithm::Sha1),
            "SHA256" => Some(Algorithm::Sha256),
            "SHA512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 40,
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha1 => Hasher::Sha1(Sha1::new()),
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }
}

pub enum Hasher {
    Sha1(Sha1),
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish_hex(self) -> String {
        match self {
            Hasher::Sha1(h) => hex::encode(h.finalize()),
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ManifestEntry {
    pub algorithm: Algorithm,
    pub name: String,
    /// Lower-case hex.
    pub digest: String,
    pub line: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}, line {line}: {message}")]
pub struct ManifestError {
    pub file: String,
    pub line: u32,
    pub message: String,
}

/// A manifest read tolerantly: its entries, and the lines that could not
/// be read (warnings, as virt-v2v gives them).
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub entries: Vec<ManifestEntry>,
    pub bad_lines: Vec<ManifestError>,
}

/// Parse a manifest strictly: any bad line, or no entry at all, is an error.
pub fn parse(file: &str, text: &[u8]) -> Result<Vec<ManifestEntry>, ManifestError> {
    let parsed = parse_lenient(file, text)?;
    if let Some(first) = parsed.bad_lines.into_iter().next() {
        return Err(first);
    }
    if parsed.entries.is_empty() {
        return Err(ManifestError {
            file: file.into(),
            line: 1,
            message: "the manifest lists no files".into(),
        });
    }
    Ok(parsed.entries)
}

/// Parse a manifest, setting bad lines aside. Errors only for what leaves
/// the manifest's meaning unclear: not text, or one file listed twice with
/// different digests.
pub fn parse_lenient(file: &str, text: &[u8]) -> Result<Parsed, ManifestError> {
    let text =
        std::str::from_utf8(text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text)).map_err(|_| {
            ManifestError {
                file: file.into(),
                line: 1,
                message: "not UTF-8 text".into(),
            }
        })?;
    let mut out = Parsed::default();
    for (i, raw) in text.lines().enumerate() {
        let line = (i + 1) as u32;
        let l = raw.trim();
        if l.is_empty() {
            continue;
        }
        let entry = match parse_line(l, line) {
            Ok(e) => e,
            Err(message) => {
                out.bad_lines.push(ManifestError {
                    file: file.into(),
                    line,
                    message,
                });
                continue;
            }
        };
        match out.entries.iter().find(|e| e.name == entry.name) {
            Some(e) if e.algorithm == entry.algorithm && e.digest == entry.digest => {}
            Some(e) => {
                return Err(ManifestError {
                    file: file.into(),
                    line,
                    message: format!(
                        "{} is listed twice with different digests (lines {} and {line})",
                        entry.name, e.line
                    ),
                })
            }
            None => out.entries.push(entry),
        }
    }
    Ok(out)
}

/// One `ALGORITHM(name)= digest` line.
fn parse_line(l: &str, line: u32) -> Result<ManifestEntry, String> {
    let open = l
        .find('(')
        .ok_or_else(|| format!("expected 'ALGORITHM(name)= digest', found '{l}'"))?;
    let close = l
        .rfind(")")
        .filter(|&c| c > open)
        .ok_or_else(|| "missing ')' after the file name".to_string())?;
    let algorithm_name = l[..open].trim();
    let algorithm = Algorithm::from_name(algorithm_name).ok_or_else(|| {
        format!("unknown digest algorithm '{algorithm_name}' (SHA1, SHA256 and SHA512 are known)")
    })?;
    let name = l[open + 1..close].to_string();
    let rest = l[close + 1..].trim_start();
    let digest = rest
        .strip_prefix('=')
        .ok_or_else(|| "missing '=' after the file name".to_string())?
        .trim()
        .to_ascii_lowercase();
    if digest.len() != algorithm.hex_len() || !digest.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "the {} digest of {name} is not {} hex digits",
            algorithm.name(),
            algorithm.hex_len()
        ));
    }
    Ok(ManifestEntry {
        algorithm,
        name,
        digest,
        line,
    })
}

/// Block size for hashing: large enough that syscalls are noise, small
/// enough to stay in L2 while two blocks are in flight.
pub const HASH_BLOCK: usize = 1 << 20;

/// Hash `len` bytes read by `read_at(buf, offset)`, reporting progress.
/// Reading runs on a helper thread so the disk and the hash work overlap.
pub fn digest_stream(
    algorithm: Algorithm,
    len: u64,
    read_at: &(dyn Fn(&mut [u8], u64) -> io::Result<()> + Sync),
    progress: &dyn Fn(u64),
) -> io::Result<String> {
    let mut hasher = algorithm.hasher();
    std::thread::scope(|scope| {
        let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(2);
        let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        for _ in 0..3 {
            let _ = empty_tx.send(vec![0u8; HASH_BLOCK]);
        }
        scope.spawn(move || {
            let mut offset = 0u64;
            while offset < len {
                let Ok(mut buf) = empty_rx.recv() else { return };
                let n = (len - offset).min(HASH_BLOCK as u64) as usize;
                buf.resize(n, 0);
                let result = read_at(&mut buf, offset).map(|_| buf);
                let failed = result.is_err();
                if full_tx.send(result).is_err() || failed {
                    return;
                }
                offset += n as u64;
            }
        });
        let mut done = 0u64;
        while done < len {
            let buf = full_rx
                .recv()
                .map_err(|_| io::Error::other("reader stopped"))??;
            hasher.update(&buf);
            done += buf.len() as u64;
            progress(done);
            let _ = empty_tx.send(buf);
        }
        Ok::<(), io::Error>(())
    })?;
    Ok(hasher.finish_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_spellings() {
        let text = "SHA1(a.ovf)= C3BD2579C2EDC76EA35B5BDE7D4F4E41EAB08963\nSHA256 (disk 1.vmdk) = 0000000000000000000000000000000000000000000000000000000000000000\n";
        let m = parse("x.mf", text.as_bytes()).unwrap();
        assert_eq!(m[0].algorithm, Algorithm::Sha1);
        assert_eq!(m[0].digest, "c3bd2579c2edc76ea35b5bde7d4f4e41eab08963");
        assert_eq!(m[1].name, "disk 1.vmdk");
        assert_eq!(m[1].line, 2);
    }

    #[test]
    fn rejects_bad_lines() {
        assert!(parse("x.mf", b"MD5(a)= 00")
            .unwrap_err()
            .message
            .contains("unknown digest"));
        assert!(parse("x.mf", b"SHA1(a)= 00")
            .unwrap_err()
            .message
            .contains("40 hex"));
        assert!(parse("x.mf", b"garbage").is_err());
        assert!(parse("x.mf", b"").is_err());
    }

    #[test]
    fn lenient_parse_sets_bad_lines_aside() {
        let text = format!("garbage here\nSHA1(a)= {}\nMD5(b)= 00\n", "0".repeat(40));
        let p = parse_lenient("x.mf", text.as_bytes()).unwrap();
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.bad_lines.len(), 2);
        assert_eq!(p.bad_lines[1].line, 3);
        let twice = format!("SHA1(a)= {}\nSHA1(a)= {}\n", "0".repeat(40), "1".repeat(40));
        assert!(parse_lenient("x.mf", twice.as_bytes()).is_err());
    }

    #[test]
    fn streams_digest_over_blocks() {
        let data: Vec<u8> = (0..(HASH_BLOCK * 2 + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let read = |buf: &mut [u8], off: u64| {
            buf.copy_from_slice(&data[off as usize..off as usize + buf.len()]);
            Ok(())
        };
        let got = digest_stream(Algorithm::Sha256, data.len() as u64, &read, &|_| {}).unwrap();
        assert_eq!(got, hex::encode(Sha256::digest(&data)));
        let failing = |_: &mut [u8], _: u64| Err(io::Error::other("boom"));
        assert!(digest_stream(Algorithm::Sha1, 10, &failing, &|_| {}).is_err());
    }
}
