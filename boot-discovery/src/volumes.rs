//! Every readable filesystem on the disk, found through the partition
//! table and LVM, plus how GRUB device names map onto them.

use crate::error::{DiscoveryError, FsError};
use crate::fs::{probe, BootFs, Probe};
use crate::load::{load_file, Load, Loaded};
use crate::lvm;
use crate::partition::{read_layout, DiskLayout, PartitionInfo, PartitionType};
use crate::view::RegionView;
use block_source::BlockSource;
use std::sync::Arc;

/// A filesystem we can read, and where it lives.
pub struct Volume {
    pub info: PartitionInfo,
    pub fs: Box<dyn BootFs>,
}

impl Volume {
    /// `partition 1 (ext4 6f0b…)` — used in reasons and errors.
    pub fn describe(&self) -> String {
        let place = match (&self.info.logical_volume, self.info.number) {
            (Some(lv), _) => format!("LVM volume {lv}"),
            (None, 0) => "the whole disk".to_string(),
            (None, n) => format!("partition {n}"),
        };
        match self.fs.uuid() {
            Some(u) => format!("{place} ({} UUID {u})", self.fs.kind()),
            None => format!("{place} ({})", self.fs.kind()),
        }
    }
}

/// The disk as discovery sees it: layout, readable volumes, and one line
/// per partition saying what was (or was not) recognised.
pub struct DiskScan {
    pub layout: DiskLayout,
    pub volumes: Vec<Volume>,
    pub findings: Vec<String>,
}

/// Probe every partition (and every LVM logical volume inside them).
pub fn scan(disk: Arc<dyn BlockSource>) -> Result<DiskScan, DiscoveryError> {
    let mut layout = read_layout(&*disk)?;
    let mut volumes = Vec::new();
    let mut findings = Vec::new();
    for part in layout.partitions.clone() {
        if part.is_never_a_filesystem() {
            findings.push(format!("{part}: skipped (holds no filesystem)"));
            continue;
        }
        let view: Arc<dyn BlockSource> =
            Arc::new(RegionView::slice(disk.clone(), part.start, part.size));
        match probe(view.clone()) {
            Probe::Fs(fs) => {
                let v = Volume {
                    info: part.clone(),
                    fs,
                };
                findings.push(format!("{part}: {}", fs_line(&v)));
                volumes.push(v);
            }
            Probe::LvmPv => {
                let lvs = lvm::logical_volumes(&view, &mut layout.notes);
                findings.push(format!(
                    "{part}: LVM2 physical volume with {} logical volume(s)",
                    lvs.len()
                ));
                for lv in lvs {
                    let lv_view: Arc<dyn BlockSource> =
                        Arc::new(RegionView::from_segments(view.clone(), lv.segments.clone()));
                    let info = PartitionInfo {
                        start: part.start
                            + lv.segments.first().map(|s| s.parent_offset).unwrap_or(0),
                        size: lv_view.capacity(),
                        type_code: PartitionType::None,
                        uuid: None,
                        name: None,
                        bootable: false,
                        logical_volume: Some(lv.name.clone()),
                        ..part.clone()
                    };
                    match probe(lv_view) {
                        Probe::Fs(fs) => {
                            let v = Volume { info, fs };
                            findings.push(format!("  LVM volume {}: {}", lv.name, fs_line(&v)));
                            volumes.push(v);
                        }
                        other => findings.push(format!(
                            "  LVM volume {}: {}",
                            lv.name,
                            other_line(&other)
                        )),
                    }
                }
            }
            other => findings.push(format!("{part}: {}", other_line(&other))),
        }
    }
    Ok(DiskScan {
        layout,
        volumes,
        findings,
    })
}

fn fs_line(v: &Volume) -> String {
    let line = match v.fs.uuid() {
        Some(u) => format!("{} filesystem, UUID {u}", v.fs.kind()),
        None => format!("{} filesystem", v.fs.kind()),
    };
    match v.fs.notes() {
        Some(n) => format!("{line}, {n}"),
        None => line,
    }
}

fn other_line(p: &Probe) -> String {
    match p {
        Probe::Other(kind) if kind.starts_with("LUKS") => format!(
            "{kind} (not read: ovf-run has no key; a /boot inside it cannot be reached, so give --kernel and --initrd from outside the disk, or --firmware bios to let its own boot loader ask for the passphrase)"
        ),
        Probe::Other(kind) => format!("{kind} (not read: cannot hold a kernel we boot from)"),
        Probe::Broken { kind, detail } => {
            format!("{kind} filesystem that could not be opened: {detail}")
        }
        Probe::Unknown => {
            "no filesystem recognised (looked for ext2/3/4, XFS, btrfs, FAT, LVM2)".to_string()
        }
        _ => String::new(),
    }
}

/// Split `(hd0,msdos1)/boot/vmlinuz` into device and path.
pub fn split_device(path: &str) -> (Option<&str>, &str) {
    if let Some(rest) = path.strip_prefix('(') {
        if let Some(end) = rest.find(')') {
            let p = &rest[end + 1..];
            return (Some(&rest[..end]), if p.is_empty() { "/" } else { p });
        }
    }
    (None, path)
}

/// Which volume a GRUB device name means: `hd0,msdos1`, `hd0,gpt2`,
/// `hd0,1`, `hd0` or our `uuid=…`/`file=…`/`label=…` from `search`, or
/// `lvm/vg-lv`.
pub fn resolve_device(dev: &str, volumes: &[Volume]) -> Option<usize> {
    let dev = dev.trim().trim_start_matches('(').trim_end_matches(')');
    if let Some(u) = dev.strip_prefix("uuid=") {
        return volumes
            .iter()
            .position(|v| v.fs.uuid().is_some_and(|x| x.eq_ignore_ascii_case(u)));
    }
    if let Some(f) = dev.strip_prefix("file=") {
        return volumes.iter().position(|v| exists(&*v.fs, f));
    }
    if let Some(l) = dev.strip_prefix("label=") {
        return volumes
            .iter()
            .position(|v| v.fs.label().as_deref() == Some(l));
    }
    if let Some(name) = dev.strip_prefix("lvm/") {
        return volumes
            .iter()
            .position(|v| v.info.logical_volume.as_deref().map(dm_name).as_deref() == Some(name));
    }
    let (disk, part) = dev.split_once(',').unwrap_or((dev, ""));
    if disk != "hd0" {
        return None;
    }
    let num: u32 = if part.is_empty() {
        0
    } else {
        part.trim_start_matches(|c: char| c.is_ascii_alphabetic())
            .parse()
            .ok()?
    };
    volumes
        .iter()
        .position(|v| v.info.logical_volume.is_none() && v.info.number == num)
}

/// `vg/lv` as device-mapper names it (`-` doubled inside names).
pub fn dm_name(vg_lv: &str) -> String {
    let (vg, lv) = vg_lv.split_once('/').unwrap_or((vg_lv, ""));
    format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
}

/// Whether a path names something (file or directory) in `fs`.
pub fn exists(fs: &dyn BootFs, path: &str) -> bool {
    let trimmed = path.trim_end_matches('/');
    let (dir, name) = match trimmed.rsplit_once('/') {
        Some((d, n)) => (if d.is_empty() { "/" } else { d }, n),
        None => return false,
    };
    if name.is_empty() {
        return true;
    }
    matches!(fs.list_dir(dir), Ok(Some(names)) if names.iter().any(|n| n == name))
}

/// Read a file, preferring volume `first`. A kernel path may be written
/// relative to a separate /boot (`/vmlinuz-6.1…`) or to the root
/// (`/boot/vmlinuz-6.1…`); when the preferred volume lacks it, the other
/// spelling and the other volumes are tried, and the returned note says so.
pub fn read_anywhere(
    volumes: &[Volume],
    first: Option<usize>,
    path: &str,
    max: u64,
    load: Load,
) -> Result<(usize, Loaded, Option<String>), FsError> {
    let alt = match path.strip_prefix("/boot/") {
        Some(rest) => format!("/{rest}"),
        None => format!("/boot{path}"),
    };
    let mut order: Vec<usize> = first.into_iter().collect();
    order.extend((0..volumes.len()).filter(|&i| Some(i) != first));
    let mut last_err = None;
    for (k, &i) in order.iter().enumerate() {
        for (j, p) in [path, alt.as_str()].iter().enumerate() {
            match load_file(&*volumes[i].fs, p, max, load) {
                Ok(Some(data)) => {
                    let note = (k > 0 || j > 0).then(|| {
                        format!(
                            "{path} was not on the expected volume; found it as {p} on {}",
                            volumes[i].describe()
                        )
                    });
                    return Ok((i, data, note));
                }
                Ok(None) => {}
                Err(e) => last_err = Some(e),
            }
        }
    }
    Err(last_err.unwrap_or_else(|| FsError::Read {
        path: path.to_string(),
        detail: "not found on any filesystem".into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_prefixes() {
        assert_eq!(
            split_device("(hd0,msdos1)/boot/vmlinuz"),
            (Some("hd0,msdos1"), "/boot/vmlinuz")
        );
        assert_eq!(split_device("/vmlinuz"), (None, "/vmlinuz"));
        assert_eq!(split_device("(uuid=ab)"), (Some("uuid=ab"), "/"));
        assert_eq!(dm_name("vg-sys/root"), "vg--sys-root");
    }
}
