//! GRUB's environment block (`grubenv`): `saved_entry`, `next_entry`,
//! `kernelopts` and friends.
//!
//! The file is exactly 1024 bytes: a `# GRUB Environment Block` header,
//! `name=value` lines, and `#` padding. GRUB escapes `\` and newline in
//! values with a backslash.

use std::collections::HashMap;

/// Parse a grubenv; malformed lines are skipped.
pub fn parse(data: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(&data[..data.len().min(64 * 1024)]);
    let mut out = HashMap::new();
    let mut logical = String::new();
    for line in text.split('\n') {
        // A value ending in an odd number of backslashes continues on the next line.
        let trailing = line.chars().rev().take_while(|&c| c == '\\').count();
        if trailing % 2 == 1 {
            logical.push_str(&line[..line.len() - 1]);
            logical.push('\n');
            continue;
        }
        logical.push_str(line);
        let l = std::mem::take(&mut logical);
        if l.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                out.insert(k.to_string(), unescape(v));
            }
        }
    }
    out
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_fixture() {
        let data = include_bytes!("../../tests/data/fedora-bls/boot/grub2/grubenv");
        assert_eq!(data.len(), 1024);
        let env = parse(data);
        assert_eq!(
            env["saved_entry"],
            "8a4f7c2e1b9d4e3f8c6a5b4d3e2f1a0b-6.5.6-300.fc39.x86_64"
        );
        assert!(env["kernelopts"].starts_with("root=UUID="));
        assert_eq!(env["boot_success"], "1");
    }

    #[test]
    fn escapes_and_garbage() {
        let env = parse(b"# GRUB Environment Block\na=x\\\\y\nb=1\\\n2\n=bad\nno equals\n####");
        assert_eq!(env["a"], "x\\y");
        assert_eq!(env["b"], "1\n2");
        assert_eq!(env.len(), 2);
    }
}
