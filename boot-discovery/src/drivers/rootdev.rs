//! `root=/dev/sdXN` and `root=/dev/hdXN` (VMware and VirtualBox exports
//! from before UUIDs) name a disk the guest will not have on virtio, where
//! it is `/dev/vdXN`. They are rewritten to `root=UUID=` of the filesystem
//! on that partition, which any initramfs finds whatever the bus.

use crate::cmdline::split_words;

/// One rewrite, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootTranslation {
    pub from: String,
    pub to: String,
}

/// Disk index (a = 0) and partition number of `/dev/sda2`, `/dev/hdb1`.
/// `None` for anything else (whole disks, `vd`, `UUID=`, `LABEL=`...).
pub fn parse_old_device(dev: &str) -> Option<(u32, u32)> {
    let rest = dev
        .strip_prefix("/dev/sd")
        .or_else(|| dev.strip_prefix("/dev/hd"))?;
    let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    if letters == 0 || letters > 2 {
        return None;
    }
    let (l, n) = rest.split_at(letters);
    // sda..sdz are 0..25, sdaa is 26 (as the kernel's sd naming goes).
    let disk = match l.as_bytes() {
        [x] => u32::from(x - b'a'),
        [x, y] => u32::from(x - b'a' + 1) * 26 + u32::from(y - b'a'),
        _ => return None,
    };
    let part: u32 = n.parse().ok().filter(|&p| p > 0)?;
    Some((disk, part))
}

/// Rewrite the first kernel `root=` (before `--`) that names an old-style
/// device whose filesystem UUID `uuid_of(disk, partition)` knows. Other
/// words are kept as they are.
pub fn translate_root(
    cmdline: &str,
    uuid_of: impl Fn(u32, u32) -> Option<String>,
) -> Option<(String, RootTranslation)> {
    let mut words = split_words(cmdline);
    let mut found = None;
    for (i, w) in words.iter().enumerate() {
        if w == "--" {
            break;
        }
        if let Some(dev) = w.strip_prefix("root=") {
            found = Some((i, dev.to_string()));
        }
    }
    // The kernel honours the last root= given.
    let (i, dev) = found?;
    let (disk, part) = parse_old_device(&dev)?;
    let uuid = uuid_of(disk, part)?;
    let to = format!("root=UUID={uuid}");
    let from = std::mem::replace(&mut words[i], to.clone());
    Some((words.join(" "), RootTranslation { from, to }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uuids(disk: u32, part: u32) -> Option<String> {
        match (disk, part) {
            (0, 1) => Some("1111-aaaa".into()),
            (0, 5) => Some("5555-eeee".into()),
            _ => None,
        }
    }

    #[test]
    fn old_names_parse() {
        assert_eq!(parse_old_device("/dev/sda1"), Some((0, 1)));
        assert_eq!(parse_old_device("/dev/hdb12"), Some((1, 12)));
        assert_eq!(parse_old_device("/dev/sdaa3"), Some((26, 3)));
        assert_eq!(parse_old_device("/dev/sda"), None);
        assert_eq!(parse_old_device("/dev/sda0"), None);
        assert_eq!(parse_old_device("/dev/vda1"), None);
        assert_eq!(parse_old_device("UUID=x"), None);
        assert_eq!(parse_old_device("/dev/sd1"), None);
    }

    #[test]
    fn root_is_rewritten_when_the_uuid_is_known() {
        let (line, t) = translate_root("ro root=/dev/sda5 quiet", uuids).unwrap();
        assert_eq!(line, "ro root=UUID=5555-eeee quiet");
        assert_eq!(t.from, "root=/dev/sda5");
        assert_eq!(t.to, "root=UUID=5555-eeee");
        // The last root= counts; init's arguments are left alone.
        let (line, _) =
            translate_root("root=/dev/vda1 root=/dev/hda1 -- root=/dev/sda5", uuids).unwrap();
        assert_eq!(line, "root=/dev/vda1 root=UUID=1111-aaaa -- root=/dev/sda5");
        assert_eq!(translate_root("root=/dev/sdb1 ro", uuids), None);
        assert_eq!(translate_root("root=/dev/sda2 ro", uuids), None);
        assert_eq!(translate_root("root=UUID=x ro", uuids), None);
        assert_eq!(translate_root("root=/dev/vda1 ro", uuids), None);
        assert_eq!(translate_root("ro quiet", uuids), None);
    }
}
