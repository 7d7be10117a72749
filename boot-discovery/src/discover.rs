//! Find what to boot: try each boot loader configuration in the order a
//! real machine would honour them, load the default entry's kernel and
//! initrd, and record why at every step.

use crate::config::{bls, extlinux, grubenv, BootEntry};
use crate::error::DiscoveryError;
use crate::load::{load_file, Load, MAX_INITRD, MAX_KERNEL};
use crate::partition::{human_size, PartitionInfo};
use crate::volumes::{read_anywhere, resolve_device, scan, split_device, DiskScan, Volume};
use block_source::BlockSource;
use std::collections::HashMap;
use std::sync::Arc;

#[path = "discover_grub.rs"]
mod grub_boot;
#[path = "discover_uki.rs"]
mod uki_boot;
use grub_boot::from_grub;
use uki_boot::from_uki;

/// Boot loader configs are kilobytes.
const MAX_CONFIG: u64 = 4 << 20;
/// A BLS entry is a few lines; larger files are skipped (there may be 512).
const MAX_BLS_ENTRY: u64 = 64 * 1024;
/// More BLS entries than this is not a real system.
const MAX_BLS_ENTRIES: usize = 512;

const GRUB_CFGS: [&str; 4] = [
    "/boot/grub/grub.cfg",
    "/grub/grub.cfg",
    "/boot/grub2/grub.cfg",
    "/grub2/grub.cfg",
];
const BLS_DIRS: [&str; 2] = ["/loader/entries", "/boot/loader/entries"];
const EXTLINUX_CFGS: [&str; 7] = [
    "/boot/extlinux/extlinux.conf",
    "/extlinux/extlinux.conf",
    "/boot/syslinux/syslinux.cfg",
    "/syslinux/syslinux.cfg",
    "/extlinux.conf",
    "/syslinux.cfg",
    "/boot/extlinux.conf",
];
const LINKS: [(&str, &str); 2] = [
    ("/vmlinuz", "/initrd.img"),
    ("/boot/vmlinuz", "/boot/initrd.img"),
];

/// What to boot, and why.
#[derive(Debug, Clone)]
pub struct BootPlan {
    /// The kernel's bytes; empty when the plan was made by [`describe`].
    pub kernel: Vec<u8>,
    /// All of the entry's initrds, concatenated 4-byte aligned as GRUB does
    /// (`Some` but empty when the plan was made by [`describe`]).
    pub initrd: Option<Vec<u8>>,
    pub kernel_size: u64,
    /// Total size of the initrds, 4-byte aligned between them.
    pub initrd_size: Option<u64>,
    /// The entry's own command line, unchanged (see `cmdline::final_cmdline`).
    pub cmdline: String,
    pub kernel_path: String,
    /// Space-separated when the entry lists several initrds.
    pub initrd_path: Option<String>,
    /// Where the kernel was read from.
    pub partition: PartitionInfo,
    pub entry_title: String,
    /// One sentence per decision, in order.
    pub reasons: Vec<String>,
}

impl BootPlan {
    /// A few lines for `inspect` and progress output: what boots, and why.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "entry:   \"{}\"\nkernel:  {} ({}) on {}\n",
            self.entry_title,
            self.kernel_path,
            human_size(self.kernel_size),
            self.partition
        );
        match (&self.initrd_path, self.initrd_size) {
            (Some(p), Some(size)) => s.push_str(&format!("initrd:  {p} ({})\n", human_size(size))),
            _ => s.push_str("initrd:  none\n"),
        }
        s.push_str(&format!("cmdline: {}\nwhy:\n", self.cmdline));
        for r in &self.reasons {
            s.push_str(&format!("  - {r}\n"));
        }
        s
    }
}

/// What a kernel image looks like, for a warning when it is not bootable.
fn kernel_note(path: &str, k: &[u8], load: Load) -> Option<String> {
    // Described plans have no bytes to look at.
    let bzimage = k.len() > 0x206 && &k[0x202..0x206] == b"HdrS";
    if load == Load::SizesOnly || bzimage {
        None
    } else if k.starts_with(b"\x7fELF") {
        Some(format!("note: {path} is an ELF vmlinux, not a bzImage"))
    } else {
        Some(format!("warning: {path} has no Linux boot header (HdrS at 0x202); it may not be a kernel ovf-run can boot"))
    }
}

/// Find the appliance's kernel, initrd and command line on its boot disk,
/// and read the kernel and initrd.
pub fn discover(disk: Arc<dyn BlockSource>) -> Result<BootPlan, DiscoveryError> {
    plan(disk, Load::Contents)
}

/// As [`discover`], but only look up the kernel's and initrd's sizes (and
/// check them against their caps): what `inspect` shows, in little memory.
pub fn describe(disk: Arc<dyn BlockSource>) -> Result<BootPlan, DiscoveryError> {
    plan(disk, Load::SizesOnly)
}

fn plan(disk: Arc<dyn BlockSource>, load: Load) -> Result<BootPlan, DiscoveryError> {
    let scan = scan(disk)?;
    let mut reasons = vec![format!(
        "partition table: {}, {} partition(s); readable filesystems: {}",
        scan.layout.table,
        scan.layout
            .partitions
            .iter()
            .filter(|p| p.number != 0)
            .count(),
        if scan.volumes.is_empty() {
            "none".to_string()
        } else {
            scan.volumes
                .iter()
                .map(Volume::describe)
                .collect::<Vec<_>>()
                .join(", ")
        }
    )];
    reasons.extend(scan.layout.notes.iter().cloned());
    let mut failures: Vec<String> = Vec::new();

    for strategy in [
        from_grub,
        from_bls_only,
        from_uki,
        from_extlinux,
        from_links,
    ] {
        match strategy(&scan, load, &mut reasons) {
            Some(Ok(plan)) => return Ok(plan),
            Some(Err(e)) => {
                reasons.push(format!("{e}; trying the next way to boot"));
                failures.push(e);
            }
            None => {}
        }
    }
    Err(DiscoveryError::NothingBootable {
        report: report(&scan, &failures),
    })
}

/// `None`: this kind of configuration is absent; `Some(Err)`: present but
/// its choice could not be loaded (the next kind is then tried).
type Attempt = Option<Result<BootPlan, String>>;

fn read_text(v: &Volume, path: &str) -> Option<String> {
    match v.fs.read_file(path, MAX_CONFIG) {
        Ok(Some(d)) => Some(String::from_utf8_lossy(&d).into_owned()),
        _ => None,
    }
}

/// The first volume holding one of `paths`. Partitions marked bootable are
/// looked at first: that is where a BIOS boots from when several systems
/// share a disk.
fn find_first(scan: &DiskScan, paths: &[&'static str]) -> Option<(usize, &'static str, String)> {
    let mut order: Vec<usize> = (0..scan.volumes.len()).collect();
    order.sort_by_key(|&i| !scan.volumes[i].info.bootable);
    for i in order {
        let v = &scan.volumes[i];
        for p in paths {
            if let Some(t) = read_text(v, p) {
                return Some((i, *p, t));
            }
        }
    }
    None
}

/// BLS entries of one volume, sorted into menu order.
fn bls_entries(v: &Volume, env: &HashMap<String, String>) -> Vec<BootEntry> {
    let mut out = Vec::new();
    for dir in BLS_DIRS {
        let Ok(Some(mut names)) = v.fs.list_dir(dir) else {
            continue;
        };
        names.sort();
        for name in names
            .iter()
            .filter(|n| n.ends_with(".conf"))
            .take(MAX_BLS_ENTRIES)
        {
            let path = format!("{dir}/{name}");
            let text =
                v.fs.read_file(&path, MAX_BLS_ENTRY)
                    .ok()
                    .flatten()
                    .map(|d| String::from_utf8_lossy(&d).into_owned());
            if let Some(text) = text {
                if let Some(e) = bls::parse_entry(name.trim_end_matches(".conf"), &text, env) {
                    out.push(e);
                }
            }
        }
        if !out.is_empty() {
            break;
        }
    }
    bls::sort_entries(&mut out);
    out.into_iter().map(|e| e.entry).collect()
}

fn from_bls_only(scan: &DiskScan, load: Load, reasons: &mut Vec<String>) -> Attempt {
    for (i, v) in scan.volumes.iter().enumerate() {
        let env = [
            "/grub2/grubenv",
            "/boot/grub2/grubenv",
            "/grub/grubenv",
            "/boot/grub/grubenv",
        ]
        .iter()
        .find_map(|p| v.fs.read_file(p, 64 * 1024).ok().flatten())
        .map(|d| grubenv::parse(&d))
        .unwrap_or_default();
        let entries = bls_entries(v, &env);
        if entries.is_empty() {
            continue;
        }
        let saved = env.get("saved_entry").filter(|s| !s.is_empty());
        let by_id = |id: &str| entries.iter().find(|e| e.id.as_deref() == Some(id));
        // systemd-boot's loader.conf `default` is a glob over entry file names.
        let loader_default = read_text(v, "/loader/loader.conf").and_then(|t| {
            t.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("default")
                    .map(|p| p.trim().to_string())
            })
        });
        let globbed = loader_default.as_deref().and_then(|pat| {
            entries.iter().find(|e| {
                let id = e.id.as_deref().unwrap_or("");
                glob(pat, id) || glob(pat, &format!("{id}.conf"))
            })
        });
        let (entry, why) = match (saved.and_then(|s| by_id(s)), globbed) {
            (Some(e), _) => (e, "it is grubenv's saved_entry".to_string()),
            (None, Some(e)) => (
                e,
                format!(
                    "/loader/loader.conf says default {}",
                    loader_default.unwrap_or_default()
                ),
            ),
            (None, None) => (&entries[0], "it sorts first (newest version)".to_string()),
        };
        reasons.push(format!(
            "boot loader: {} Boot Loader Spec entries on {} (no grub.cfg)",
            entries.len(),
            v.describe()
        ));
        reasons.push(format!("entry \"{}\": {why}", entry.title));
        return Some(load_entry(scan, entry, Some(i), load, reasons));
    }
    None
}

fn from_extlinux(scan: &DiskScan, load: Load, reasons: &mut Vec<String>) -> Attempt {
    let (vi, path, text) = find_first(scan, &EXTLINUX_CFGS)?;
    let (entries, default) = extlinux::parse(&text);
    let Some((idx, why)) = default else {
        return Some(Err(format!(
            "{path} on {} has no label with a kernel",
            scan.volumes[vi].describe()
        )));
    };
    let dir = path.rsplit_once('/').map(|x| x.0).unwrap_or("");
    let mut entry = entries[idx].clone();
    // Relative paths in extlinux are relative to the config's directory.
    let abs = |p: &str| {
        if p.starts_with('/') {
            p.to_string()
        } else {
            format!("{dir}/{p}")
        }
    };
    entry.kernel = abs(&entry.kernel);
    entry.initrds = entry.initrds.iter().map(|p| abs(p)).collect();
    reasons.push(format!(
        "boot loader: extlinux/syslinux, {path} on {}",
        scan.volumes[vi].describe()
    ));
    reasons.push(format!("entry \"{}\": {why}", entry.title));
    Some(load_entry(scan, &entry, Some(vi), load, reasons))
}

/// Last resort: Debian's `/vmlinuz` and `/initrd.img` links. The command
/// line is then made up: `root=` names the filesystem that holds `/etc`.
fn from_links(scan: &DiskScan, load: Load, reasons: &mut Vec<String>) -> Attempt {
    let mut refused = None;
    for (i, v) in scan.volumes.iter().enumerate() {
        for (k, ird) in LINKS {
            let loaded = load_file(&*v.fs, k, MAX_KERNEL, load).and_then(|kernel| {
                let initrd = kernel
                    .as_ref()
                    .map(|_| load_file(&*v.fs, ird, MAX_INITRD, load))
                    .transpose()?;
                Ok(kernel.map(|k| (k, initrd.flatten())))
            });
            let (kernel, initrd) = match loaded {
                Ok(Some(found)) => found,
                Ok(None) => continue,
                Err(e) => {
                    refused = Some(format!("{k} link on {}: {e}", v.describe()));
                    continue;
                }
            };
            let root = scan
                .volumes
                .iter()
                .find(|r| crate::volumes::exists(&*r.fs, "/etc/fstab"))
                .unwrap_or(v);
            let cmdline = match (&root.info.logical_volume, root.fs.uuid(), &initrd) {
                (Some(lv), _, _) => format!("root=/dev/mapper/{} ro", crate::volumes::dm_name(lv)),
                (None, Some(u), Some(_)) => format!("root=UUID={u} ro"),
                _ => format!("root=/dev/vda{} ro", root.info.number.max(1)),
            };
            reasons.push(format!(
                "no boot loader configuration found; using the {k} link on {}",
                v.describe()
            ));
            reasons.push(format!(
                "made up the command line \"{cmdline}\": root is {}, which holds /etc/fstab",
                root.describe()
            ));
            reasons.extend(kernel_note(k, &kernel.bytes, load));
            let target = v.fs.read_link(k).ok().flatten();
            return Some(Ok(BootPlan {
                cmdline,
                kernel_path: target
                    .map(|t| format!("{k} -> {t}"))
                    .unwrap_or_else(|| k.to_string()),
                initrd_path: initrd.as_ref().map(|_| ird.to_string()),
                kernel_size: kernel.size,
                kernel: kernel.bytes,
                initrd_size: initrd.as_ref().map(|i| i.size),
                initrd: initrd.map(|i| i.bytes),
                partition: scan.volumes[i].info.clone(),
                entry_title: format!("{k} link"),
                reasons: std::mem::take(reasons),
            }));
        }
    }
    refused.map(Err)
}

/// Shell-style glob with `*` and `?` (loader.conf's `default`).
fn glob(pat: &str, s: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pat.chars().collect(), s.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Load an entry's kernel and initrds, resolving GRUB device names.
fn load_entry(
    scan: &DiskScan,
    e: &BootEntry,
    cfg_vol: Option<usize>,
    load: Load,
    reasons: &mut Vec<String>,
) -> Result<BootPlan, String> {
    if e.efi {
        return uki_boot::load_bls_efi(scan, e, cfg_vol, load, reasons);
    }
    let pick = |path: &str| -> (Option<usize>, String) {
        let (dev, p) = split_device(path);
        let dev = dev.or(e.device.as_deref());
        let vol = dev
            .and_then(|d| resolve_device(d, &scan.volumes))
            .or(cfg_vol);
        (vol, p.to_string())
    };
    let (kvol, kpath) = pick(&e.kernel);
    let (ki, kernel, note) = read_anywhere(&scan.volumes, kvol, &kpath, MAX_KERNEL, load)
        .map_err(|err| format!("entry \"{}\": kernel {}: {err}", e.title, e.kernel))?;
    reasons.extend(note);
    if let Some(why) = crate::load::kernel_arch_problem(&kernel.bytes) {
        return Err(format!("entry \"{}\": kernel {kpath} {why}", e.title));
    }
    reasons.push(format!(
        "kernel {kpath} ({}) {} {}",
        human_size(kernel.size),
        if load == Load::Contents {
            "read from"
        } else {
            "found on"
        },
        scan.volumes[ki].describe()
    ));
    let mut initrd: Option<(u64, Vec<u8>)> = None;
    let mut paths = Vec::new();
    for ird in &e.initrds {
        let (ivol, ipath) = pick(ird);
        let (ii, data, note) =
            read_anywhere(&scan.volumes, ivol.or(Some(ki)), &ipath, MAX_INITRD, load)
                .map_err(|err| format!("entry \"{}\": initrd {ird}: {err}", e.title))?;
        reasons.extend(note);
        reasons.push(format!(
            "initrd {ipath} ({}) {} {}",
            human_size(data.size),
            if load == Load::Contents {
                "read from"
            } else {
                "found on"
            },
            scan.volumes[ii].describe()
        ));
        paths.push(ipath);
        let Some((size, buf)) = initrd.as_mut() else {
            // The usual single initrd is moved, not copied: it can be 100 MiB.
            initrd = Some((data.size, data.bytes));
            continue;
        };
        let total = size.next_multiple_of(4) + data.size;
        if total > MAX_INITRD {
            return Err(format!(
                "entry \"{}\": initrds together exceed {}",
                e.title,
                human_size(MAX_INITRD)
            ));
        }
        *size = total;
        if load == Load::Contents {
            buf.resize(buf.len().next_multiple_of(4), 0);
            buf.extend_from_slice(&data.bytes);
        }
    }
    Ok(BootPlan {
        kernel_size: kernel.size,
        kernel: kernel.bytes,
        initrd_size: initrd.as_ref().map(|(size, _)| *size),
        initrd: initrd.map(|(_, bytes)| bytes),
        cmdline: e.args.clone(),
        kernel_path: kpath,
        initrd_path: (!paths.is_empty()).then(|| paths.join(" ")),
        partition: scan.volumes[ki].info.clone(),
        entry_title: e.title.clone(),
        reasons: std::mem::take(reasons),
    })
}

/// What was found and what is missing, for the "nothing bootable" error.
fn report(scan: &DiskScan, failures: &[String]) -> String {
    let mut r = format!("found: partition table {}\n", scan.layout.table);
    for f in &scan.findings {
        r.push_str(&format!("  {f}\n"));
    }
    for n in &scan.layout.notes {
        r.push_str(&format!("  note: {n}\n"));
    }
    for f in failures {
        r.push_str(&format!("  problem: {f}\n"));
    }
    let mut looked = vec![grub_boot::ESP_GRUB_CFGS.to_string()];
    looked.extend(GRUB_CFGS.iter().map(|s| s.to_string()));
    looked.extend(BLS_DIRS.iter().map(|d| format!("{d}/*.conf")));
    looked.extend(uki_boot::UKI_DIRS.iter().map(|d| format!("{d}/*.efi")));
    looked.extend(EXTLINUX_CFGS.iter().map(|s| s.to_string()));
    looked.extend(LINKS.iter().map(|(k, _)| k.to_string()));
    r.push_str(&format!(
        "looked for (on each readable filesystem): {}\n",
        looked.join(", ")
    ));
    r.push_str(if scan.volumes.is_empty() {
        "missing: a filesystem ovf-run can read (ext2/3/4, XFS, btrfs, FAT, on a partition or LVM volume)"
    } else if failures.is_empty() {
        "missing: a boot loader configuration or a /vmlinuz link; give --kernel (and --initrd, --cmdline) to boot anyway, or --firmware bios to run the disk's own boot loader"
    } else {
        "missing: the kernel or initrd the boot configuration names; give --kernel (and --initrd, --cmdline) to boot anyway, or --firmware bios to run the disk's own boot loader"
    });
    r
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob("fedora-*", "fedora-6.5.6.conf"));
        assert!(glob("*6.5.?-300*", "abc-6.5.6-300.fc39"));
        assert!(!glob("debian-*", "fedora-1"));
        assert!(glob("exact.conf", "exact.conf"));
        assert!(!glob("a*b", "acbx"));
    }
}
