//! `modules.dep.bin`, the index kmod's `modprobe` looks modules up in (it
//! never reads the text `modules.dep`). Modules added to an initramfs must
//! be in it, or `modprobe virtio_blk` there finds nothing.
//!
//! Format (libkmod-index.c, version 2.1, big-endian): magic `B007F457`,
//! version `00020001`, the root node's offset word, then trie nodes. A
//! node's offset word carries flags (prefix, children, values) over a
//! 28-bit offset; a node holds an optional NUL-terminated prefix, an
//! optional child table (`first`, `last` byte, one offset word per byte in
//! between) and optional values (count, then priority and NUL-terminated
//! string each). This writer uses one character per edge and no prefixes,
//! which the reader accepts.

use super::modules::ModDep;
use std::collections::BTreeMap;

const MAGIC: u32 = 0xB007_F457;
const VERSION: u32 = 0x0002_0001;
const F_VALUES: u32 = 0x4000_0000;
const F_CHILDS: u32 = 0x2000_0000;
const OFFSET_MASK: u32 = 0x0FFF_FFFF;

#[derive(Default)]
struct Node {
    children: BTreeMap<u8, Node>,
    values: Vec<(u32, String)>,
}

/// Keys kmod can look up are ASCII below 128 (its child table bound);
/// module names always are.
fn usable(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| (1..128).contains(&b))
}

/// The `modules.dep.bin` for `dep`, with values as depmod writes them
/// (`path: dep dep`). Modules with unusable names are left out.
pub fn modules_dep_bin(dep: &ModDep) -> Vec<u8> {
    let mut root = Node::default();
    for (prio, (name, (path, deps))) in dep.entries.iter().enumerate() {
        if !usable(name) || path.contains('\0') {
            continue;
        }
        let mut node = &mut root;
        for b in name.bytes() {
            node = node.children.entry(b).or_default();
        }
        let mut value = format!("{path}:");
        for d in deps {
            value.push(' ');
            value.push_str(d);
        }
        node.values.push((prio as u32, value));
    }
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC.to_be_bytes());
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    let root_word = write_node(&root, &mut out);
    out[8..12].copy_from_slice(&root_word.to_be_bytes());
    out
}

/// Write children first, then the node; return its offset word.
fn write_node(node: &Node, out: &mut Vec<u8>) -> u32 {
    let child_words: Vec<(u8, u32)> = node
        .children
        .iter()
        .map(|(&b, c)| (b, write_node(c, out)))
        .collect();
    let offset = out.len() as u32 & OFFSET_MASK;
    let mut word = offset;
    if let (Some(&(first, _)), Some(&(last, _))) = (child_words.first(), child_words.last()) {
        word |= F_CHILDS;
        out.push(first);
        out.push(last);
        for b in first..=last {
            let w = child_words
                .iter()
                .find(|(c, _)| *c == b)
                .map(|(_, w)| *w)
                .unwrap_or(0);
            out.extend_from_slice(&w.to_be_bytes());
        }
    }
    if !node.values.is_empty() {
        word |= F_VALUES;
        out.extend_from_slice(&(node.values.len() as u32).to_be_bytes());
        for (prio, v) in &node.values {
            out.extend_from_slice(&prio.to_be_bytes());
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
    }
    word
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The real `modprobe --show-depends` resolves modules through our index.
    #[test]
    fn real_modprobe_reads_the_index() {
        let dep = ModDep::parse(
            "kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz\n\
kernel/drivers/virtio/virtio.ko.xz:\nkernel/drivers/virtio/virtio_ring.ko.xz:\n\
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz\n\
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\nkernel/net/core/failover.ko:\n",
        );
        let tmp = tempfile::tempdir().unwrap();
        let rel = "6.1.0-test";
        let dir = tmp.path().join("lib/modules").join(rel);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("modules.dep.bin"), modules_dep_bin(&dep)).unwrap();
        for (path, _) in dep.entries.values() {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        let show = |name: &str| {
            let out = Command::new("modprobe")
                .arg("-d")
                .arg(tmp.path())
                .args(["-S", rel, "--show-depends", name])
                .output()
                .expect("modprobe (kmod) is needed: scripts/setup-deps");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let blk = show("virtio_blk");
        let lines: Vec<&str> = blk.lines().collect();
        assert_eq!(lines.len(), 3, "{blk}");
        assert!(lines[0].ends_with("virtio_ring.ko.xz "), "{blk}");
        assert!(lines[2].ends_with("virtio_blk.ko.xz "), "{blk}");
        let net = show("virtio-net");
        assert_eq!(net.lines().count(), 5, "{net}");
        assert!(net.contains("failover.ko"));
    }
}
