//! LVM2 linear logical volumes, enough to read a root or /boot on LVM.
//!
//! A PV starts with a label (`LABELONE`) in one of its first four sectors,
//! pointing at a PV header that lists metadata areas. The current metadata
//! is a text document (located by the first raw location of the metadata
//! area header, possibly wrapping around its circular buffer) describing
//! the volume group: extent size, PVs with their `pe_start`, and LVs made of
//! segments. Only linear segments (`striped` with one stripe) on this PV
//! are mapped; anything else is reported, not guessed at.
//!
//! The metadata checksums are not verified: the text is parsed defensively
//! and every number is bounds-checked against the PV instead.

use crate::view::{read_vec, Segment};
use block_source::BlockSource;
use std::collections::BTreeMap;
use std::sync::Arc;

const MDA_MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";
const MDA_HEADER: u64 = 512;
/// VG metadata is kilobytes; a megabyte-scale text is already unusual.
const MAX_METADATA: u64 = 16 << 20;

/// A logical volume: `vg/lv` and where its bytes live on the PV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalVolume {
    pub name: String,
    pub segments: Vec<Segment>,
}

/// A value in LVM's metadata text format.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Str(String),
    List(Vec<Value>),
    Section(BTreeMap<String, Value>),
}

impl Value {
    fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Section(m) => m.get(key),
            _ => None,
        }
    }
    fn int(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    fn str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    fn sections(&self) -> Vec<(&str, &Value)> {
        match self {
            Value::Section(m) => m
                .iter()
                .filter(|(_, v)| matches!(v, Value::Section(_)))
                .map(|(k, v)| (k.as_str(), v))
                .collect(),
            _ => vec![],
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Int(i64),
    Punct(char),
}

fn lex(text: &str) -> Vec<Tok> {
    let b: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' && i + 1 < b.len() {
                    i += 1;
                }
                s.push(b[i]);
                i += 1;
            }
            i += 1;
            out.push(Tok::Str(s));
        } else if "={}[],".contains(c) {
            out.push(Tok::Punct(c));
            i += 1;
        } else {
            let start = i;
            while i < b.len() && !b[i].is_whitespace() && !"={}[],\"#".contains(b[i]) {
                i += 1;
            }
            let w: String = b[start..i].iter().collect();
            out.push(match w.parse::<i64>() {
                Ok(n) => Tok::Int(n),
                Err(_) => Tok::Ident(w),
            });
        }
    }
    out
}

/// Parse the metadata text into nested sections. Malformed input yields
/// whatever parsed before the problem.
pub fn parse_metadata(text: &str) -> Value {
    let toks = lex(text);
    let mut pos = 0;
    section(&toks, &mut pos, 0)
}

fn section(t: &[Tok], pos: &mut usize, depth: usize) -> Value {
    let mut m = BTreeMap::new();
    while *pos < t.len() {
        match &t[*pos] {
            Tok::Punct('}') => {
                *pos += 1;
                break;
            }
            Tok::Ident(name) | Tok::Str(name) => {
                let name = name.clone();
                *pos += 1;
                match t.get(*pos) {
                    Some(Tok::Punct('{')) if depth < 16 => {
                        *pos += 1;
                        m.insert(name, section(t, pos, depth + 1));
                    }
                    Some(Tok::Punct('=')) => {
                        *pos += 1;
                        if let Some(v) = value(t, pos) {
                            m.insert(name, v);
                        }
                    }
                    _ => {}
                }
            }
            _ => *pos += 1,
        }
    }
    Value::Section(m)
}

fn value(t: &[Tok], pos: &mut usize) -> Option<Value> {
    let v = match t.get(*pos)? {
        Tok::Int(n) => Value::Int(*n),
        Tok::Str(s) | Tok::Ident(s) => Value::Str(s.clone()),
        Tok::Punct('[') => {
            *pos += 1;
            let mut items = Vec::new();
            while let Some(tok) = t.get(*pos) {
                match tok {
                    Tok::Punct(']') => break,
                    Tok::Punct(',') => *pos += 1,
                    Tok::Int(n) => {
                        items.push(Value::Int(*n));
                        *pos += 1;
                    }
                    Tok::Str(s) | Tok::Ident(s) => {
                        items.push(Value::Str(s.clone()));
                        *pos += 1;
                    }
                    _ => *pos += 1,
                }
            }
            Value::List(items)
        }
        _ => return None,
    };
    *pos += 1;
    Some(v)
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// The PV's UUID (32 characters, no dashes) and its current metadata text.
pub fn read_pv(pv: &dyn BlockSource) -> Result<(String, String), String> {
    let label_sector = (0..4u64)
        .find(|i| {
            read_vec(pv, i * 512, 8)
                .map(|m| m == b"LABELONE")
                .unwrap_or(false)
        })
        .ok_or("no LVM2 label in the first four sectors")?;
    let label = read_vec(pv, label_sector * 512, 512).map_err(|e| e.to_string())?;
    if &label[24..32] != b"LVM2 001" {
        return Err(format!(
            "unsupported LVM label type {:?}",
            String::from_utf8_lossy(&label[24..32])
        ));
    }
    let hdr_off = le32(&label, 20) as usize;
    if hdr_off > 512 - 40 {
        return Err("LVM label points outside its sector".into());
    }
    let h = &label[hdr_off..];
    let uuid = String::from_utf8_lossy(&h[..32]).into_owned();
    // Data areas, then metadata areas; each list ends with a zero entry.
    let mut pos = 40;
    let mut lists: [Vec<(u64, u64)>; 2] = [vec![], vec![]];
    for list in lists.iter_mut() {
        while pos + 16 <= h.len() {
            let (o, s) = (le64(h, pos), le64(h, pos + 8));
            pos += 16;
            if o == 0 && s == 0 {
                break;
            }
            list.push((o, s));
        }
    }
    for &(mda_off, mda_size) in &lists[1] {
        let mh = read_vec(pv, mda_off, MDA_HEADER as usize)
            .map_err(|e| format!("metadata area header: {e}"))?;
        if &mh[4..20] != MDA_MAGIC {
            continue;
        }
        let (off, size) = (le64(&mh, 40), le64(&mh, 48));
        if size == 0
            || size > MAX_METADATA
            || size > mda_size
            || off >= mda_size
            || off < MDA_HEADER
        {
            continue;
        }
        // The text may wrap around the circular buffer, past the header.
        let first = size.min(mda_size - off);
        let mut text = read_vec(pv, mda_off + off, first as usize).map_err(|e| e.to_string())?;
        if first < size {
            text.extend(
                read_vec(pv, mda_off + MDA_HEADER, (size - first) as usize)
                    .map_err(|e| e.to_string())?,
            );
        }
        let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        return Ok((uuid, String::from_utf8_lossy(&text[..end]).into_owned()));
    }
    Err("the LVM2 physical volume has no readable metadata area".into())
}

/// Map the linear LVs of the volume group whose extents live on this PV.
/// Volumes that cannot be mapped (striped, thin, RAID, on other PVs) are
/// named in `notes`.
pub fn logical_volumes(pv: &Arc<dyn BlockSource>, notes: &mut Vec<String>) -> Vec<LogicalVolume> {
    let (uuid, text) = match read_pv(&**pv) {
        Ok(x) => x,
        Err(e) => {
            notes.push(format!("LVM2 physical volume: {e}"));
            return vec![];
        }
    };
    let meta = parse_metadata(&text);
    let Some((vg_name, vg)) = meta.sections().into_iter().next() else {
        notes.push("LVM2 metadata names no volume group".into());
        return vec![];
    };
    let sector = 512i64;
    let Some(extent) = vg.int("extent_size").filter(|&e| e > 0).map(|e| e * sector) else {
        notes.push(format!("LVM2 volume group {vg_name} has no extent_size"));
        return vec![];
    };
    let pvs = vg
        .get("physical_volumes")
        .map(Value::sections)
        .unwrap_or_default();
    let Some((pv_key, pv_meta)) = pvs
        .into_iter()
        .find(|(_, p)| p.str("id").map(|id| id.replace('-', "")) == Some(uuid.clone()))
    else {
        notes.push(format!(
            "LVM2 volume group {vg_name} does not list this PV ({uuid})"
        ));
        return vec![];
    };
    let pe_start = pv_meta.int("pe_start").unwrap_or(0) * sector;
    let mut out = Vec::new();
    for (lv_name, lv) in vg
        .get("logical_volumes")
        .map(Value::sections)
        .unwrap_or_default()
    {
        let visible = matches!(lv.get("status"), Some(Value::List(l)) if l.contains(&Value::Str("VISIBLE".into())));
        if !visible {
            continue;
        }
        let full = format!("{vg_name}/{lv_name}");
        let mut segs = lv
            .sections()
            .into_iter()
            .filter(|(k, _)| k.starts_with("segment"))
            .map(|(_, s)| s)
            .collect::<Vec<_>>();
        segs.sort_by_key(|s| s.int("start_extent").unwrap_or(i64::MAX));
        let mut segments = Vec::new();
        let mut why_not = None;
        for s in segs {
            let linear = s.str("type") == Some("striped") && s.int("stripe_count") == Some(1);
            let stripes = match s.get("stripes") {
                Some(Value::List(l)) => l.clone(),
                _ => vec![],
            };
            let (start, count) = (s.int("start_extent"), s.int("extent_count"));
            match (linear, stripes.as_slice(), start, count) {
                (true, [Value::Str(p), Value::Int(pe)], Some(start), Some(count))
                    if p == pv_key && start >= 0 && count > 0 && *pe >= 0 =>
                {
                    let calc = || -> Option<Segment> {
                        Some(Segment {
                            view_offset: u64::try_from(start.checked_mul(extent)?).ok()?,
                            parent_offset: u64::try_from(
                                pe.checked_mul(extent)?.checked_add(pe_start)?,
                            )
                            .ok()?,
                            len: u64::try_from(count.checked_mul(extent)?).ok()?,
                        })
                    };
                    match calc() {
                        Some(seg) => segments.push(seg),
                        None => why_not = Some("segment numbers overflow".to_string()),
                    }
                }
                (true, [Value::Str(p), ..], ..) if p != pv_key => {
                    why_not = Some(format!("a segment lives on another PV ({p})"))
                }
                _ => {
                    why_not = Some(format!(
                        "segment type {} is not linear",
                        s.str("type").unwrap_or("?")
                    ))
                }
            }
        }
        match why_not {
            Some(w) => notes.push(format!("LVM volume {full} not readable: {w}")),
            None if !segments.is_empty() => out.push(LogicalVolume {
                name: full,
                segments,
            }),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str = r#"vg0 {
id = "abc"
seqno = 4
extent_size = 8192	# 4 Megabytes
physical_volumes {
pv0 {
id = "AAAAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGGGG"
device = "/dev/sda2"	# Hint only
status = ["ALLOCATABLE"]
pe_start = 2048
pe_count = 100
}
}
logical_volumes {
root {
status = ["READ", "WRITE", "VISIBLE"]
segment_count = 2
segment2 {
start_extent = 10
extent_count = 5
type = "striped"
stripe_count = 1
stripes = [
"pv0", 50
]
}
segment1 {
start_extent = 0
extent_count = 10
type = "striped"
stripe_count = 1	# linear
stripes = [
"pv0", 0
]
}
}
pool {
status = ["READ", "WRITE", "VISIBLE"]
segment1 {
start_extent = 0
extent_count = 1
type = "thin-pool"
}
}
}
}
contents = "Text Format Volume Group"
"#;

    #[test]
    fn metadata_text_parses() {
        let v = parse_metadata(META);
        let vg = v.get("vg0").unwrap();
        assert_eq!(vg.int("extent_size"), Some(8192));
        assert_eq!(v.str("contents"), Some("Text Format Volume Group"));
        let lv = vg.get("logical_volumes").unwrap().get("root").unwrap();
        assert_eq!(
            lv.get("segment1").unwrap().get("stripes"),
            Some(&Value::List(vec![Value::Str("pv0".into()), Value::Int(0)]))
        );
    }

    /// Build a PV image in memory: label in sector 1, mda at 4096.
    fn pv_image(meta: &str) -> Vec<u8> {
        let mut d = vec![0u8; 1 << 20];
        let l = 512;
        d[l..l + 8].copy_from_slice(b"LABELONE");
        d[l + 8..l + 16].copy_from_slice(&1u64.to_le_bytes());
        d[l + 20..l + 24].copy_from_slice(&32u32.to_le_bytes());
        d[l + 24..l + 32].copy_from_slice(b"LVM2 001");
        let h = l + 32;
        d[h..h + 32].copy_from_slice(b"AAAAAABBBBCCCCDDDDEEEEFFFFGGGGGG");
        // data area (1 MiB at 1 MiB), end, metadata area at 4096 size 1 MiB - 4096, end
        d[h + 40..h + 48].copy_from_slice(&(1u64 << 20).to_le_bytes());
        d[h + 72..h + 80].copy_from_slice(&4096u64.to_le_bytes());
        d[h + 80..h + 88].copy_from_slice(&((1u64 << 20) - 4096).to_le_bytes());
        let m = 4096;
        d[m + 4..m + 20].copy_from_slice(MDA_MAGIC);
        d[m + 40..m + 48].copy_from_slice(&512u64.to_le_bytes());
        d[m + 48..m + 56].copy_from_slice(&(meta.len() as u64).to_le_bytes());
        d[m + 512..m + 512 + meta.len()].copy_from_slice(meta.as_bytes());
        d
    }

    #[test]
    fn linear_segments_map_and_others_are_reported() {
        let pv: Arc<dyn BlockSource> =
            Arc::new(block_source::MemorySource::new(pv_image(META), true));
        let mut notes = vec![];
        let lvs = logical_volumes(&pv, &mut notes);
        let ext = 8192 * 512;
        assert_eq!(lvs.len(), 1);
        assert_eq!(lvs[0].name, "vg0/root");
        assert_eq!(
            lvs[0].segments,
            vec![
                Segment {
                    view_offset: 0,
                    parent_offset: 2048 * 512,
                    len: 10 * ext
                },
                Segment {
                    view_offset: 10 * ext,
                    parent_offset: 2048 * 512 + 50 * ext,
                    len: 5 * ext
                },
            ]
        );
        assert!(
            notes
                .iter()
                .any(|n| n.contains("vg0/pool") && n.contains("thin-pool")),
            "{notes:?}"
        );
    }

    #[test]
    fn garbage_metadata_does_not_panic() {
        for text in ["", "{{{{", "vg { extent_size = -5 logical_volumes { a { status = [\"VISIBLE\"] segment1 { start_extent = 9223372036854775807 extent_count = 9 type = \"striped\" stripe_count = 1 stripes = [\"pv0\", 1] } } } }"] {
            let pv: Arc<dyn BlockSource> = Arc::new(block_source::MemorySource::new(pv_image(text), true));
            let _ = logical_volumes(&pv, &mut vec![]);
        }
        let _ = parse_metadata(&"a { ".repeat(10_000));
    }
}
