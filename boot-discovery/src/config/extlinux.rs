//! extlinux/syslinux configuration (`extlinux.conf`, `syslinux.cfg`).
//!
//! Keywords are case-insensitive. `DEFAULT` names a label (or, in old
//! configs, is itself a kernel command line); `MENU DEFAULT` inside a label
//! wins over it. `initrd=` inside `APPEND` is how syslinux passes an
//! initrd, so it is honoured and removed from the arguments.

use super::BootEntry;

/// Parse a config; returns the entries in order and a sentence on which
/// is the default (index into the entries).
pub fn parse(text: &str) -> (Vec<BootEntry>, Option<(usize, String)>) {
    let mut entries: Vec<BootEntry> = Vec::new();
    let mut default: Option<String> = None;
    let mut menu_default: Option<usize> = None;
    let mut global_append = String::new();
    let mut cur: Option<BootEntry> = None;
    let mut cur_append: Option<String> = None;

    let finish = |cur: &mut Option<BootEntry>,
                  app: &mut Option<String>,
                  global: &str,
                  entries: &mut Vec<BootEntry>| {
        if let Some(mut e) = cur.take() {
            let args = app.take().unwrap_or_else(|| global.to_string());
            let mut kept = Vec::new();
            for w in args.split_whitespace() {
                if let Some(list) = w.strip_prefix("initrd=") {
                    e.initrds.extend(
                        list.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string),
                    );
                } else if w != "-" {
                    kept.push(w);
                }
            }
            e.args = kept.join(" ");
            if !e.kernel.is_empty() {
                entries.push(e);
            }
        }
    };

    for line in text.lines().take(100_000) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        match key.to_ascii_lowercase().as_str() {
            "label" => {
                finish(&mut cur, &mut cur_append, &global_append, &mut entries);
                cur = Some(BootEntry {
                    title: rest.to_string(),
                    id: Some(rest.to_string()),
                    kernel: String::new(),
                    initrds: vec![],
                    args: String::new(),
                    device: None,
                    version: None,
                    efi: false,
                });
            }
            "kernel" | "linux" => {
                if let Some(e) = cur.as_mut() {
                    e.kernel = rest.to_string();
                }
            }
            "initrd" => {
                if let Some(e) = cur.as_mut() {
                    e.initrds = rest
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect();
                }
            }
            "append" => match cur.as_mut() {
                Some(_) => cur_append = Some(rest.to_string()),
                None => global_append = rest.to_string(),
            },
            "default" => default = Some(rest.to_string()),
            "menu" => {
                let (sub, val) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                match (sub.to_ascii_lowercase().as_str(), cur.as_mut()) {
                    ("label", Some(e)) => e.title = val.trim().replace('^', ""),
                    ("default", Some(_)) => menu_default = Some(entries.len()),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    finish(&mut cur, &mut cur_append, &global_append, &mut entries);
    if entries.is_empty() {
        return (entries, None);
    }
    if let Some(i) = menu_default.filter(|&i| i < entries.len()) {
        return (entries, Some((i, "it is marked MENU DEFAULT".to_string())));
    }
    if let Some(d) = default {
        let first = d.split_whitespace().next().unwrap_or("");
        if let Some(i) = entries.iter().position(|e| e.id.as_deref() == Some(first)) {
            return (entries, Some((i, format!("DEFAULT {first}"))));
        }
        return (
            entries,
            Some((
                0,
                format!("DEFAULT \"{d}\" names no label; took the first label"),
            )),
        );
    }
    (
        entries,
        Some((0, "no DEFAULT; took the first label".to_string())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_fixture() {
        let (e, d) = parse(include_str!("../../tests/data/extlinux.conf"));
        assert_eq!(e.len(), 2, "the com32 label has no kernel");
        let (i, why) = d.unwrap();
        assert_eq!(i, 0);
        assert_eq!(why, "DEFAULT l0");
        assert_eq!(e[0].kernel, "/boot/vmlinuz-6.1.0-13-amd64");
        assert_eq!(e[0].initrds, vec!["/boot/initrd.img-6.1.0-13-amd64"]);
        assert_eq!(
            e[0].args,
            "root=UUID=6f0b8f1e-5e2a-4b3c-9d8e-7f6a5b4c3d2e ro quiet"
        );
        assert_eq!(e[0].title, "Debian GNU/Linux, kernel 6.1.0-13-amd64");
        assert_eq!(
            e[1].args,
            "root=UUID=6f0b8f1e-5e2a-4b3c-9d8e-7f6a5b4c3d2e ro single"
        );
    }

    #[test]
    fn menu_default_and_initrd_in_append() {
        let cfg = "default a\nlabel a\n kernel /a\nlabel b\n menu default\n linux /b\n append initrd=/i1,/i2 ro\n";
        let (e, d) = parse(cfg);
        assert_eq!(d.unwrap().0, 1);
        assert_eq!(e[1].initrds, vec!["/i1", "/i2"]);
        assert_eq!(e[1].args, "ro");
    }
}
