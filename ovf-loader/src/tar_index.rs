//! An index of a tar archive's members, read in place.
//!
//! An OVA is a tar file. We never extract it: we read the 512-byte headers,
//! note where each member's data starts and how long it is, and read members
//! straight from the archive afterwards. ustar, GNU long names (`L`), GNU
//! base-256 sizes and pax extended headers (`x`, `g`: `path`, `size`) are
//! understood; links, absolute names, `..`, duplicates and members that run
//! past the end of the file are refused, because an OVA needs none of them
//! and each is a way to make a reader look outside the package.

use std::fs::File;
use std::os::unix::fs::FileExt;

const BLOCK: u64 = 512;
/// Long names and pax headers larger than this are refused (they are a few
/// hundred bytes in practice).
const MAX_META_BYTES: u64 = 1 << 20;
/// OVAs hold a handful of files; this bounds the index.
pub const MAX_MEMBERS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarMember {
    pub name: String,
    /// Offset of the member's data in the archive.
    pub offset: u64,
    pub size: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("at byte {offset}: {message}")]
pub struct TarError {
    pub offset: u64,
    pub message: String,
}

fn err(offset: u64, message: impl Into<String>) -> TarError {
    TarError {
        offset,
        message: message.into(),
    }
}

/// Something tar headers can be read from: a file, or bytes in memory (tests, fuzzing).
pub trait TarSource {
    fn len(&self) -> u64;
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
}

impl TarSource for File {
    fn len(&self) -> u64 {
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
}

impl TarSource for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let start = usize::try_from(offset)
            .ok()
            .filter(|&s| s <= <[u8]>::len(self));
        let end = start
            .and_then(|s| s.checked_add(buf.len()))
            .filter(|&e| e <= <[u8]>::len(self));
        match (start, end) {
            (Some(s), Some(e)) => {
                buf.copy_from_slice(&self[s..e]);
                Ok(())
            }
            _ => Err(std::io::ErrorKind::UnexpectedEof.into()),
        }
    }
}

/// Read the member index. Members come back in archive order.
pub fn index(src: &(impl TarSource + ?Sized)) -> Result<Vec<TarMember>, TarError> {
    let total = src.len();
    if total < BLOCK {
        return Err(err(0, "file is too small to be a tar archive"));
    }
    let mut members: Vec<TarMember> = Vec::new();
    let mut pos = 0u64;
    let mut long_name: Option<String> = None;
    let mut pax: PaxOverrides = PaxOverrides::default();
    let mut global: PaxOverrides = PaxOverrides::default();
    let mut header = [0u8; BLOCK as usize];
    loop {
        if pos + BLOCK > total {
            // Archives written by some tools stop without the two zero blocks.
            if members.is_empty() {
                return Err(err(pos, "archive ends before its first member"));
            }
            break;
        }
        src.read_exact_at(&mut header, pos)
            .map_err(|e| err(pos, format!("cannot read header: {e}")))?;
        if header.iter().all(|&b| b == 0) {
            break;
        }
        verify_checksum(&header).map_err(|m| err(pos, m))?;
        let typeflag = header[156];
        let header_size = parse_size(&header[124..136]).map_err(|m| err(pos + 124, m))?;
        let data = pos + BLOCK;
        let size = match (typeflag, pax.size.or(global.size)) {
            (b'x' | b'g' | b'L' | b'K', _) => header_size,
            (_, Some(s)) => s,
            _ => header_size,
        };
        let end = data
            .checked_add(size)
            .filter(|&e| e <= total)
            .ok_or_else(|| err(pos, format!("member data ({size} bytes) runs past the end of the archive ({total} bytes)")))?;
        match typeflag {
            b'L' | b'x' | b'g' => {
                if size > MAX_META_BYTES {
                    return Err(err(
                        pos,
                        format!("extended header of {size} bytes is too large"),
                    ));
                }
                let mut meta = vec![0u8; size as usize];
                src.read_exact_at(&mut meta, data)
                    .map_err(|e| err(data, e.to_string()))?;
                match typeflag {
                    b'L' => long_name = Some(c_string(&meta)),
                    b'x' => pax = parse_pax(&meta).map_err(|m| err(data, m))?,
                    _ => global = parse_pax(&meta).map_err(|m| err(data, m))?,
                }
            }
            b'0' | 0 | b'7' => {
                let name = pax
                    .path
                    .take()
                    .or_else(|| long_name.take())
                    .unwrap_or_else(|| ustar_name(&header));
                let name = check_name(&name).map_err(|m| err(pos, m))?;
                if members.iter().any(|m| m.name == name) {
                    return Err(err(pos, format!("member '{name}' appears twice")));
                }
                if members.len() >= MAX_MEMBERS {
                    return Err(err(pos, format!("more than {MAX_MEMBERS} members")));
                }
                members.push(TarMember {
                    name,
                    offset: data,
                    size,
                });
                pax = PaxOverrides::default();
            }
            b'5' => {
                // Directories carry no data; member names already say where files are.
                long_name = None;
                pax = PaxOverrides::default();
            }
            b'1' | b'2' | b'K' => {
                return Err(err(pos, "links are not allowed in an OVA package"));
            }
            other => {
                return Err(err(
                    pos,
                    format!("unsupported tar member type '{}'", other.escape_ascii()),
                ));
            }
        }
        pos = end
            .checked_add(BLOCK - 1)
            .map(|e| e / BLOCK * BLOCK)
            .ok_or_else(|| err(pos, "member size overflows"))?;
    }
    if members.is_empty() {
        return Err(err(0, "the archive has no files"));
    }
    Ok(members)
}

#[derive(Default)]
struct PaxOverrides {
    path: Option<String>,
    size: Option<u64>,
}

/// pax records: `"%d %s=%s\n"`, the length counting the whole record.
fn parse_pax(mut meta: &[u8]) -> Result<PaxOverrides, String> {
    let mut out = PaxOverrides::default();
    while !meta.is_empty() && meta[0] != 0 {
        let space = meta
            .iter()
            .position(|&b| b == b' ')
            .ok_or("pax record without a length")?;
        let len: usize = std::str::from_utf8(&meta[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("pax record length is not a number")?;
        if len <= space + 1 || len > meta.len() {
            return Err(format!("pax record length {len} is out of range"));
        }
        let record = &meta[space + 1..len];
        let record = record
            .strip_suffix(b"\n")
            .ok_or("pax record does not end with a newline")?;
        let eq = record
            .iter()
            .position(|&b| b == b'=')
            .ok_or("pax record without '='")?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        match key {
            b"path" => {
                out.path =
                    Some(String::from_utf8(value.to_vec()).map_err(|_| "pax path is not UTF-8")?)
            }
            b"size" => {
                out.size = Some(
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or("pax size is not a number")?,
                )
            }
            _ => {}
        }
        meta = &meta[len..];
    }
    Ok(out)
}

fn verify_checksum(header: &[u8; 512]) -> Result<(), String> {
    let stored = parse_octal(&header[148..156]).ok_or("header checksum field is not a number")?;
    let unsigned: u64 = header
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                b' ' as u64
            } else {
                b as u64
            }
        })
        .sum();
    let signed: i64 = header
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                b' ' as i64
            } else {
                b as i8 as i64
            }
        })
        .sum();
    if stored == unsigned || stored as i64 == signed {
        Ok(())
    } else {
        Err("header checksum does not match: not a tar archive, or a damaged one".into())
    }
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let s: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    if s.is_empty() {
        return Some(0);
    }
    let s = std::str::from_utf8(&s).ok()?;
    u64::from_str_radix(s, 8).ok()
}

/// Size field: octal, or GNU base-256 (high bit set) for sizes of 8 GiB and more.
fn parse_size(field: &[u8]) -> Result<u64, String> {
    if field[0] & 0x80 != 0 {
        if field[0] & 0x40 != 0 {
            return Err("negative member size".into());
        }
        let mut value: u64 = (field[0] & 0x3f) as u64;
        for &b in &field[1..] {
            value = value
                .checked_mul(256)
                .and_then(|v| v.checked_add(b as u64))
                .ok_or("member size does not fit in 64 bits")?;
        }
        return Ok(value);
    }
    parse_octal(field).ok_or_else(|| "member size is not an octal number".into())
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn ustar_name(header: &[u8; 512]) -> String {
    let name = c_string(&header[0..100]);
    let is_ustar = &header[257..262] == b"ustar";
    let prefix = if is_ustar {
        c_string(&header[345..500])
    } else {
        String::new()
    };
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

/// Normalise a member name (`./a//b` → `a/b`) and refuse names that could
/// point outside the package.
pub fn check_name(name: &str) -> Result<String, String> {
    if name.starts_with('/') {
        return Err(format!("member name '{name}' is absolute"));
    }
    if name.contains('\\') || name.contains('\0') {
        return Err(format!(
            "member name '{}' has a backslash or NUL",
            name.escape_debug()
        ));
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("member name '{name}' contains '..'")),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(format!("member name '{name}' is empty"));
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ustar writer for tests (typeflag, name, data).
    pub(crate) fn tar(members: &[(u8, &str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(ty, name, data) in members {
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[100..107].copy_from_slice(b"0000644");
            h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
            h[156] = ty;
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
            h[148..156].copy_from_slice(b"        ");
            let sum: u32 = h.iter().map(|&b| b as u32).sum();
            h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
            out.extend_from_slice(&h);
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    #[test]
    fn indexes_plain_members() {
        let t = tar(&[(b'0', "a.ovf", b"<x/>"), (b'0', "./disk.vmdk", &[7u8; 600])]);
        let idx = index(t.as_slice()).unwrap();
        assert_eq!(
            idx[0],
            TarMember {
                name: "a.ovf".into(),
                offset: 512,
                size: 4
            }
        );
        assert_eq!(idx[1].name, "disk.vmdk");
        assert_eq!(idx[1].offset, 1536);
    }

    #[test]
    fn gnu_long_names_and_pax_paths() {
        let long = "d/".repeat(80) + "file.vmdk";
        let t = tar(&[
            (b'L', "././@LongLink", long.as_bytes()),
            (b'0', "short", b"x"),
        ]);
        assert_eq!(index(t.as_slice()).unwrap()[0].name, long);
        let rec = "path=pax-name.ovf\n";
        let rec = format!("{} {rec}", rec.len() + 3);
        let t = tar(&[(b'x', "PaxHeader", rec.as_bytes()), (b'0', "short", b"x")]);
        assert_eq!(index(t.as_slice()).unwrap()[0].name, "pax-name.ovf");
    }

    #[test]
    fn refuses_escapes_links_duplicates_and_overruns() {
        for bad in ["../x", "/etc/passwd", "a/../../b"] {
            let t = tar(&[(b'0', bad, b"x")]);
            assert!(index(t.as_slice()).is_err(), "{bad}");
        }
        assert!(index(tar(&[(b'2', "l", b"")]).as_slice())
            .unwrap_err()
            .message
            .contains("links"));
        let dup = tar(&[(b'0', "a", b"1"), (b'0', "./a", b"2")]);
        assert!(index(dup.as_slice()).unwrap_err().message.contains("twice"));
        let mut t = tar(&[(b'0', "a", &[1u8; 2000])]);
        t.truncate(1024);
        assert!(index(t.as_slice())
            .unwrap_err()
            .message
            .contains("past the end"));
    }

    #[test]
    fn refuses_non_tar_and_bad_checksums() {
        assert!(index(vec![0x89u8; 4096].as_slice()).is_err());
        let mut t = tar(&[(b'0', "a", b"1")]);
        t[0] = b'b';
        assert!(index(t.as_slice())
            .unwrap_err()
            .message
            .contains("checksum"));
    }

    #[test]
    fn base256_sizes_and_pax_sizes() {
        let mut field = [0u8; 12];
        field[0] = 0x80;
        field[4..].copy_from_slice(&0x2_0000_0000u64.to_be_bytes());
        assert_eq!(parse_size(&field).unwrap(), 0x2_0000_0000);
        field[0] = 0xff;
        assert!(parse_size(&field).is_err());
        let o = parse_pax(b"20 size=12345678901\n").unwrap();
        assert_eq!(o.size, Some(12345678901));
        assert!(parse_pax(b"99 size=1\n").is_err());
    }
}
