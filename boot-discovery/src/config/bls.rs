//! Boot Loader Specification entries (`/loader/entries/*.conf`), as
//! Fedora, RHEL and their relatives install them and GRUB's `blscfg` reads
//! them.
//!
//! Options may refer to grubenv variables (`options $kernelopts` on Fedora
//! 30–33, RHEL 8); those are expanded with the grubenv values, as blscfg
//! does.

use super::BootEntry;
use std::cmp::Ordering;
use std::collections::HashMap;

/// Parse one entry file. `id` is its file name without `.conf`. An entry
/// with only an `efi` line names a unified kernel image (`efi` is set);
/// `None` when there is neither a `linux` nor an `efi` line.
pub fn parse_entry(id: &str, text: &str, grubenv: &HashMap<String, String>) -> Option<BlsEntry> {
    let mut title = None;
    let mut version = None;
    let mut sort_key = None;
    let mut machine_id = None;
    let mut linux = None;
    let mut efi = None;
    let mut initrds = Vec::new();
    let mut options: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let value = value.trim().to_string();
        match key {
            "title" => title = Some(value),
            "version" => version = Some(value),
            "sort-key" => sort_key = Some(value),
            "machine-id" => machine_id = Some(value),
            "linux" => linux = Some(value),
            "efi" => efi = Some(value),
            "initrd" => initrds.extend(value.split_whitespace().map(str::to_string)),
            "options" => options.push(expand_vars(&value, grubenv)),
            _ => {}
        }
    }
    let entry = BootEntry {
        title: title.unwrap_or_else(|| id.to_string()),
        id: Some(id.to_string()),
        efi: linux.is_none() && efi.is_some(),
        kernel: linux.or(efi)?,
        initrds,
        args: options
            .join(" ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        device: None,
        version,
    };
    Some(BlsEntry {
        entry,
        sort_key,
        machine_id,
    })
}

/// An entry plus the keys the spec sorts by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlsEntry {
    pub entry: BootEntry,
    pub sort_key: Option<String>,
    pub machine_id: Option<String>,
}

/// `$name` / `${name}` from grubenv; unknown names become empty, as in GRUB.
fn expand_vars(s: &str, env: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < b.len() {
        if b[i] == '$' {
            let (name, next) = if b.get(i + 1) == Some(&'{') {
                match b[i + 2..].iter().position(|&c| c == '}') {
                    Some(p) => (b[i + 2..i + 2 + p].iter().collect::<String>(), i + 3 + p),
                    None => (String::new(), i + 1),
                }
            } else {
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == '_') {
                    j += 1;
                }
                (b[i + 1..j].iter().collect(), j)
            };
            if !name.is_empty() {
                out.push_str(env.get(&name).map(String::as_str).unwrap_or(""));
                i = next;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Compare versions the way rpm's `rpmvercmp` does: runs of digits compare
/// numerically, runs of letters lexically, digits beat letters, `~` sorts
/// before anything.
pub fn vercmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        let skip = |s: &[u8]| {
            s.iter()
                .position(|c| c.is_ascii_alphanumeric() || *c == b'~')
                .unwrap_or(s.len())
        };
        a = &a[skip(a)..];
        b = &b[skip(b)..];
        match (a.first(), b.first()) {
            (Some(b'~'), Some(b'~')) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (Some(b'~'), _) => return Ordering::Less,
            (_, Some(b'~')) => return Ordering::Greater,
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            _ => {}
        }
        let numeric = a[0].is_ascii_digit();
        let take = |s: &[u8]| {
            s.iter()
                .position(|c| {
                    if numeric {
                        !c.is_ascii_digit()
                    } else {
                        !c.is_ascii_alphabetic()
                    }
                })
                .unwrap_or(s.len())
        };
        let (la, lb) = (take(a), take(b));
        if lb == 0 {
            // Different kinds of segment: the numeric one is newer.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (sa, sb) = (&a[..la], &b[..lb]);
        let ord = if numeric {
            let ta = trim_zeros(sa);
            let tb = trim_zeros(sb);
            ta.len().cmp(&tb.len()).then(ta.cmp(tb))
        } else {
            sa.cmp(sb)
        };
        if ord != Ordering::Equal {
            return ord;
        }
        a = &a[la..];
        b = &b[lb..];
    }
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b'0').count();
    &s[n..]
}

/// Menu order: entries with a sort-key first, by sort-key, machine-id,
/// then newest version first; ties by id descending (the spec's order,
/// and what Fedora's blscfg shows).
pub fn sort_entries(entries: &mut [BlsEntry]) {
    entries.sort_by(|x, y| {
        let key = match (&x.sort_key, &y.sort_key) {
            (Some(a), Some(b)) => a.cmp(b).then_with(|| x.machine_id.cmp(&y.machine_id)),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        key.then_with(|| {
            vercmp(
                y.entry.version.as_deref().unwrap_or(""),
                x.entry.version.as_deref().unwrap_or(""),
            )
        })
        .then_with(|| y.entry.id.cmp(&x.entry.id))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/fedora-bls/boot/loader/entries"
    );

    fn fixtures() -> Vec<BlsEntry> {
        let env = crate::config::grubenv::parse(include_bytes!(
            "../../tests/data/fedora-bls/boot/grub2/grubenv"
        ));
        let mut v = Vec::new();
        for f in std::fs::read_dir(DIR).unwrap() {
            let f = f.unwrap().path();
            let id = f.file_stem().unwrap().to_str().unwrap().to_string();
            if let Some(e) = parse_entry(&id, &std::fs::read_to_string(&f).unwrap(), &env) {
                v.push(e);
            }
        }
        sort_entries(&mut v);
        v
    }

    #[test]
    fn fedora_layout_sorted_newest_first_with_kernelopts() {
        let v = fixtures();
        let versions: Vec<_> = v.iter().map(|e| e.entry.version.clone().unwrap()).collect();
        assert_eq!(
            versions,
            vec![
                "6.5.6-300.fc39.x86_64",
                "6.5.5-300.fc39.x86_64",
                "0-rescue-8a4f7c2e1b9d4e3f8c6a5b4d3e2f1a0b"
            ]
        );
        let newest = &v[0].entry;
        assert_eq!(newest.kernel, "/vmlinuz-6.5.6-300.fc39.x86_64");
        assert_eq!(newest.initrds, vec!["/initramfs-6.5.6-300.fc39.x86_64.img"]);
        assert!(
            newest.args.starts_with("root=UUID=3c4d2e1f-"),
            "{}",
            newest.args
        );
        assert!(!newest.args.contains('$'));
    }

    #[test]
    fn efi_key_names_a_uki_and_linux_wins() {
        let e = parse_entry("u", "title U\nefi /EFI/Linux/u.efi\n", &HashMap::new()).unwrap();
        assert!(e.entry.efi);
        assert_eq!(e.entry.kernel, "/EFI/Linux/u.efi");
        let e = parse_entry("b", "linux /vmlinuz\nefi /x.efi\n", &HashMap::new()).unwrap();
        assert!(!e.entry.efi);
        assert_eq!(e.entry.kernel, "/vmlinuz");
        assert!(parse_entry("n", "title nothing\n", &HashMap::new()).is_none());
    }

    #[test]
    fn vercmp_matches_rpm() {
        assert_eq!(vercmp("6.5.10", "6.5.9"), Ordering::Greater);
        assert_eq!(vercmp("1.0~rc1", "1.0"), Ordering::Less);
        assert_eq!(vercmp("1.0a", "1.0"), Ordering::Greater);
        assert_eq!(vercmp("1.01", "1.1"), Ordering::Equal);
        assert_eq!(vercmp("6.5.6-300.fc39", "0-rescue-abc"), Ordering::Greater);
    }

    #[test]
    fn vars_expand() {
        let env: HashMap<_, _> = [("kernelopts".to_string(), "root=/dev/x ro".to_string())].into();
        assert_eq!(
            expand_vars("$kernelopts ${kernelopts} $none x$", &env),
            "root=/dev/x ro root=/dev/x ro  x$"
        );
    }
}
