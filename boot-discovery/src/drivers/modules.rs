//! Kernel module bookkeeping: module names, `modules.dep` and
//! `modules.builtin` as depmod writes them, and the kernel release.

use std::collections::{BTreeMap, BTreeSet};

/// `virtio-pci.ko.xz` and `virtio_pci` name the same module (kmod turns
/// `-` into `_`). `None` for a file that is not a module.
pub fn module_name(path: &str) -> Option<String> {
    let base = path.rsplit('/').next()?;
    let stem = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
        .iter()
        .find_map(|ext| base.strip_suffix(ext))?;
    (!stem.is_empty()).then(|| stem.replace('-', "_"))
}

/// `modules.dep`: module name → (path relative to the release directory,
/// dependencies' paths in the order depmod lists them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModDep {
    pub entries: BTreeMap<String, (String, Vec<String>)>,
}

impl ModDep {
    pub fn parse(text: &str) -> ModDep {
        let mut entries = BTreeMap::new();
        for line in text.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let path = path.trim();
            if let Some(name) = module_name(path) {
                let deps = deps.split_whitespace().map(str::to_string).collect();
                entries.insert(name, (path.to_string(), deps));
            }
        }
        ModDep { entries }
    }

    /// `names` and everything they depend on, as paths, dependencies
    /// first. Names this file does not know are returned apart.
    pub fn closure(&self, names: &[&str]) -> (Vec<String>, Vec<String>) {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        let mut unknown = Vec::new();
        for n in names {
            let Some((path, deps)) = self.entries.get(*n) else {
                unknown.push(n.to_string());
                continue;
            };
            // depmod lists the full transitive closure; reversed, each
            // module comes after what it needs.
            for p in deps.iter().rev().chain(std::iter::once(path)) {
                if seen.insert(p.clone()) {
                    order.push(p.clone());
                }
            }
        }
        (order, unknown)
    }

    /// The text form, one line per module, sorted by path.
    pub fn render(&self) -> String {
        let mut lines: Vec<String> = self
            .entries
            .values()
            .map(|(p, d)| {
                if d.is_empty() {
                    format!("{p}:")
                } else {
                    format!("{p}: {}", d.join(" "))
                }
            })
            .collect();
        lines.sort();
        lines.into_iter().map(|l| l + "\n").collect()
    }
}

/// Names in `modules.builtin` (paths of modules compiled into the kernel).
pub fn parse_builtin(text: &str) -> BTreeSet<String> {
    text.lines().filter_map(module_name).collect()
}

/// Module names listed one per line, `#` comments allowed (initramfs-tools
/// `conf/modules`, `/etc/modules-load.d/*.conf`); arguments after the name
/// are ignored.
pub fn parse_list(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| n.replace('-', "_"))
        .collect()
}

/// The release a bzImage names in its setup header (`kernel_version` at
/// 0x20e points, less 0x200, at "6.1.0-13-amd64 (debian-kernel@…) #1 …").
pub fn bzimage_release(kernel: &[u8]) -> Option<String> {
    if kernel.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let ptr = u16::from_le_bytes([*kernel.get(0x20e)?, *kernel.get(0x20f)?]) as usize;
    let start = ptr.checked_add(0x200)?;
    let bytes = kernel.get(start..kernel.len().min(start + 256))?;
    let end = bytes.iter().position(|&b| b == 0 || b == b' ')?;
    let rel = std::str::from_utf8(&bytes[..end]).ok()?;
    valid_release(rel).then(|| rel.to_string())
}

/// The release in a kernel file name: `vmlinuz-6.1.0-13-amd64`.
pub fn release_from_path(path: &str) -> Option<String> {
    let base = path.rsplit('/').next()?;
    let rel = ["vmlinuz-", "vmlinux-", "bzImage-", "kernel-"]
        .iter()
        .find_map(|p| base.strip_prefix(p))?;
    valid_release(rel).then(|| rel.to_string())
}

/// A release is used as a path component: no `/`, no `..`, printable.
pub fn valid_release(rel: &str) -> bool {
    !rel.is_empty()
        && rel.len() <= 128
        && rel != ".."
        && rel != "."
        && rel
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+~".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz\n\
kernel/drivers/virtio/virtio_pci.ko.xz: kernel/drivers/virtio/virtio_pci_legacy_dev.ko.xz kernel/drivers/virtio/virtio_pci_modern_dev.ko.xz kernel/drivers/virtio/virtio.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz\n\
kernel/drivers/virtio/virtio.ko.xz:\nkernel/drivers/virtio/virtio_ring.ko.xz:\n\
kernel/drivers/virtio/virtio_pci_legacy_dev.ko.xz:\nkernel/drivers/virtio/virtio_pci_modern_dev.ko.xz:\n";

    #[test]
    fn names_and_closure() {
        assert_eq!(
            module_name("a/b/virtio-pci.ko.zst").as_deref(),
            Some("virtio_pci")
        );
        assert_eq!(module_name("a/modules.dep"), None);
        let dep = ModDep::parse(DEP);
        let (order, unknown) = dep.closure(&["virtio_pci", "virtio_blk", "virtio_net"]);
        assert_eq!(unknown, ["virtio_net"]);
        assert_eq!(order.len(), 6);
        assert_eq!(order[0], "kernel/drivers/virtio/virtio_ring.ko.xz");
        assert_eq!(order[4], "kernel/drivers/virtio/virtio_pci.ko.xz");
        assert_eq!(order[5], "kernel/drivers/block/virtio_blk.ko.xz");
        assert_eq!(ModDep::parse(&dep.render()), dep);
    }

    #[test]
    fn lists_and_releases() {
        let l = parse_list("# comment\nvirtio-blk\n\n ahci  foo=1 # x\n");
        assert_eq!(l.into_iter().collect::<Vec<_>>(), ["ahci", "virtio_blk"]);
        assert_eq!(
            release_from_path("/boot/vmlinuz-6.1.0-13-amd64").as_deref(),
            Some("6.1.0-13-amd64")
        );
        assert_eq!(release_from_path("/boot/vmlinuz-../../x"), None);
        let mut k = vec![0u8; 0x400];
        k[0x202..0x206].copy_from_slice(b"HdrS");
        k[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        k[0x300..0x320].copy_from_slice(b"6.12.8-cloud (x@y) #1 SMP\0\0\0\0\0\0\0");
        assert_eq!(bzimage_release(&k).as_deref(), Some("6.12.8-cloud"));
        k[0x20e] = 0xff;
        k[0x20f] = 0xff;
        assert_eq!(bzimage_release(&k), None);
    }
}
