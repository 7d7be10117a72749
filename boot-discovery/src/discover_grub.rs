//! GRUB 2 as discovery finds it: first the config an EFI System Partition
//! holds for GRUB's EFI image (`/EFI/<distribution>/grub.cfg`, usually a
//! stub that `configfile`s the real menu on the root or /boot filesystem),
//! then the real menu searched directly (`/boot/grub/grub.cfg` and kin).
//!
//! Order: the ESP's config comes first because that is what a UEFI
//! machine's firmware starts: its GRUB reads the ESP config before any
//! other. When the ESP config is the usual stub, following it reaches the
//! same `/boot/grub/grub.cfg` the direct search would find, so both orders
//! agree on a normal disk. When the stub leads nowhere (unknown UUID,
//! missing file, a loop), the direct search still runs. A disk made by
//! `grub-install --removable` (only `EFI/BOOT/BOOTX64.EFI` on the ESP, the
//! prefix built into the image) has no ESP config and is found directly.

use super::{bls_entries, find_first, load_entry, read_text, Attempt, BootPlan, GRUB_CFGS};
use crate::config::grub::{self, NextConfig};
use crate::config::grubenv;
use crate::load::Load;
use crate::volumes::{resolve_device, split_device, DiskScan};
use std::collections::HashSet;

/// What `report` lists for the ESP configs.
pub(super) const ESP_GRUB_CFGS: &str = "/EFI/*/grub.cfg (FAT)";
/// An ESP has a handful of vendor directories.
const MAX_ESP_DIRS: usize = 64;
/// `configfile` hops followed from one config; a stub needs one.
const MAX_HOPS: usize = 4;

/// `/EFI/<dir>/grub.cfg` on FAT volumes, distribution directories in name
/// order and the removable-media `EFI/BOOT` last (firmware falls back to
/// it only without a boot entry of its own). FAT names are matched
/// without regard to case, as FAT does.
fn esp_configs(scan: &DiskScan) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, v) in scan.volumes.iter().enumerate() {
        if v.fs.kind() != "vfat" {
            continue;
        }
        let Ok(Some(mut dirs)) = v.fs.list_dir("/EFI") else {
            continue;
        };
        dirs.truncate(MAX_ESP_DIRS);
        dirs.sort_by_key(|d| (d.eq_ignore_ascii_case("BOOT"), d.to_ascii_lowercase()));
        out.extend(dirs.iter().map(|d| (i, format!("/EFI/{d}/grub.cfg"))));
    }
    out
}

pub(super) fn from_grub(scan: &DiskScan, load: Load, reasons: &mut Vec<String>) -> Attempt {
    let mut seen = HashSet::new();
    let mut first_err = None;
    for (vi, path) in esp_configs(scan) {
        // Read one at a time: each may be up to MAX_CONFIG.
        let Some(text) = read_text(&scan.volumes[vi], &path) else {
            continue;
        };
        reasons.push(format!(
            "EFI boot loader config: {path} on {} (what the ESP's GRUB reads first)",
            scan.volumes[vi].describe()
        ));
        match run_config(scan, (vi, path, text), &mut seen, load, reasons) {
            Ok(plan) => return Some(Ok(plan)),
            Err(e) => {
                reasons.push(format!("{e}; trying the next GRUB config"));
                first_err.get_or_insert(e);
            }
        }
    }
    let Some((vi, path, text)) = find_first(scan, &GRUB_CFGS) else {
        return first_err.map(Err);
    };
    if seen.contains(&seen_key(scan, vi, path)) {
        return first_err.map(Err);
    }
    Some(run_config(
        scan,
        (vi, path.to_string(), text),
        &mut seen,
        load,
        reasons,
    ))
}

/// Interpret a config, following `configfile` hand-overs (at most
/// [`MAX_HOPS`], never the same file twice), then load the default entry.
fn run_config(
    scan: &DiskScan,
    start: (usize, String, String),
    seen: &mut HashSet<(usize, String)>,
    load: Load,
    reasons: &mut Vec<String>,
) -> Result<BootPlan, String> {
    let (mut vi, mut path, mut text) = start;
    let mut from: Option<NextConfig> = None;
    for _ in 0..=MAX_HOPS {
        seen.insert(seen_key(scan, vi, &path));
        let env = read_grubenv(scan, vi, &path, reasons);
        let menu = grub::read_menu_from(&text, &env, from.as_ref());
        let Some(next) = menu.next.clone().filter(|_| menu.items.is_empty()) else {
            reasons.push(format!(
                "boot loader: GRUB 2, {path} on {}",
                scan.volumes[vi].describe()
            ));
            return choose_and_load(scan, vi, &path, &menu, &env, load, reasons);
        };
        let (to_vi, to_path) = hand_over_target(scan, vi, &path, &next)?;
        reasons.push(format!(
            "{path} is a stub: `{} {}` goes on to {to_path} on {}",
            next.command,
            next.path,
            scan.volumes[to_vi].describe()
        ));
        if seen.contains(&seen_key(scan, to_vi, &to_path)) {
            return Err(format!(
                "{path}: {} {to_path} loops back to a config already read",
                next.command
            ));
        }
        text = read_text(&scan.volumes[to_vi], &to_path).ok_or_else(|| {
            format!(
                "{path}: {} target {to_path} is not on {}",
                next.command,
                scan.volumes[to_vi].describe()
            )
        })?;
        (vi, path, from) = (to_vi, to_path, Some(next));
    }
    Err(format!(
        "{path}: more than {MAX_HOPS} configfile hand-overs"
    ))
}

/// A config's identity for loop detection: FAT names ignore case.
fn seen_key(scan: &DiskScan, vi: usize, path: &str) -> (usize, String) {
    if scan.volumes[vi].fs.kind() == "vfat" {
        (vi, path.to_ascii_lowercase())
    } else {
        (vi, path.to_string())
    }
}

/// The volume and path a hand-over names: its own `(device)`, else the
/// `$root` of that moment, else the volume of the config itself.
fn hand_over_target(
    scan: &DiskScan,
    vi: usize,
    path: &str,
    next: &NextConfig,
) -> Result<(usize, String), String> {
    let (dev, p) = split_device(&next.path);
    let dev = dev.or(next.root.as_deref()).filter(|d| !d.is_empty());
    let to_vi = match dev {
        Some(d) => resolve_device(d, &scan.volumes).ok_or_else(|| {
            format!(
                "{path}: {} {}: no readable filesystem is {d}",
                next.command, next.path
            )
        })?,
        None => vi,
    };
    let p = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    };
    Ok((to_vi, p))
}

/// The grubenv beside a config, and a reason when it names an entry.
fn read_grubenv(
    scan: &DiskScan,
    vi: usize,
    cfg_path: &str,
    reasons: &mut Vec<String>,
) -> std::collections::HashMap<String, String> {
    let env_path = format!(
        "{}/grubenv",
        cfg_path.rsplit_once('/').map(|x| x.0).unwrap_or("")
    );
    let env = scan.volumes[vi]
        .fs
        .read_file(&env_path, 64 * 1024)
        .ok()
        .flatten()
        .map(|d| grubenv::parse(&d))
        .unwrap_or_default();
    if let Some(s) = env.get("saved_entry") {
        reasons.push(format!("{env_path} has saved_entry={s}"));
    }
    env
}

/// Expand `blscfg`, pick the default entry as GRUB would, and load it.
fn choose_and_load(
    scan: &DiskScan,
    vi: usize,
    cfg_path: &str,
    menu: &grub::GrubMenu,
    env: &std::collections::HashMap<String, String>,
    load: Load,
    reasons: &mut Vec<String>,
) -> Result<BootPlan, String> {
    // Replace the blscfg placeholder with the entries it would generate.
    let mut items = Vec::new();
    for it in &menu.items {
        match it {
            grub::MenuItem::Bls { root } => {
                let bv = root
                    .as_deref()
                    .and_then(|r| resolve_device(r, &scan.volumes))
                    .unwrap_or(vi);
                // GRUB's blscfg needs a `linux` key; `efi` entries are systemd-boot's.
                let entries: Vec<_> = bls_entries(&scan.volumes[bv], env)
                    .into_iter()
                    .filter(|e| !e.efi)
                    .collect();
                reasons.push(format!(
                    "blscfg: {} Boot Loader Spec entries on {}",
                    entries.len(),
                    scan.volumes[bv].describe()
                ));
                items.extend(entries.into_iter().map(|mut e| {
                    e.device = root.clone();
                    grub::MenuItem::Entry {
                        title: e.title.clone(),
                        id: e.id.clone(),
                        boot: Some(e),
                    }
                }));
            }
            other => items.push(other.clone()),
        }
    }
    let Some(choice) = grub::choose(menu, &items) else {
        return Err(format!(
            "{cfg_path} on {} has no menu entry with a linux line",
            scan.volumes[vi].describe()
        ));
    };
    reasons.push(format!(
        "entry \"{}\": {}",
        choice.entry.title, choice.reason
    ));
    load_entry(scan, choice.entry, Some(vi), load, reasons)
}
