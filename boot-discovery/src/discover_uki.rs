//! Unified kernel images (Boot Loader Spec type #2): `EFI/Linux/*.efi` on
//! an EFI System Partition (or under `/boot/efi`, `/efi` on another
//! filesystem), each a systemd EFI stub carrying the kernel, initrd and
//! command line as PE sections (see [`crate::pe`]).
//!
//! Ordered as systemd-boot orders its menu: newest version first, by file
//! name compared version-wise; `default` in `/loader/loader.conf`, a glob
//! over entry names, picks one when it matches. An image that is not a
//! UKI (no PE header, no `.linux`) is left out of the menu as
//! systemd-boot does; one that is a UKI but cannot be loaded is an error.

use super::{glob, kernel_note, read_text, Attempt, BootPlan};
use crate::config::bls::vercmp;
use crate::config::BootEntry;
use crate::load::{Load, MAX_INITRD, MAX_KERNEL};
use crate::partition::human_size;
use crate::pe::{self, MAX_HEADERS};
use crate::volumes::split_device;
use crate::volumes::DiskScan;
use std::ops::Range;

/// Where UKIs live, per the Boot Loader Specification.
pub(super) const UKI_DIRS: [&str; 3] = ["/EFI/Linux", "/boot/efi/EFI/Linux", "/efi/EFI/Linux"];
/// More images than this in one directory is not a real ESP.
const MAX_UKIS: usize = 256;
/// Kernel and initrd at their caps, plus the stub and small sections.
const MAX_UKI_FILE: u64 = MAX_KERNEL + MAX_INITRD + (64 << 20);
/// `.cmdline`, `.osrel` and `.uname` are a few hundred bytes.
const MAX_SMALL: u64 = 64 * 1024;
/// Describing reads no more than this from the start of an image to reach
/// the small sections (they precede `.linux` in images ukify and objcopy
/// make).
const MAX_PREFIX: u64 = 4 << 20;

/// Longer than any FAT long name (255) with room for globbing.
const MAX_PATTERN: usize = 512;

/// One image found: volume, full path, file name.
struct Found {
    vol: usize,
    path: String,
    name: String,
}

fn candidates(scan: &DiskScan) -> Vec<Found> {
    let mut out = Vec::new();
    for (i, v) in scan.volumes.iter().enumerate() {
        for dir in UKI_DIRS {
            let Ok(Some(names)) = v.fs.list_dir(dir) else {
                continue;
            };
            let efis = names.into_iter().filter(|n| {
                n.len() > 4 && n.to_ascii_lowercase().ends_with(".efi") && !n.starts_with('.')
            });
            for name in efis.take(MAX_UKIS) {
                out.push(Found {
                    vol: i,
                    path: format!("{dir}/{name}"),
                    name,
                });
            }
            break;
        }
    }
    out.truncate(MAX_UKIS);
    // Newest first, as systemd-boot sorts entries without a sort-key.
    out.sort_by(|a, b| vercmp(&b.name, &a.name));
    out
}

pub(super) fn from_uki(scan: &DiskScan, load: Load, reasons: &mut Vec<String>) -> Attempt {
    let mut found = candidates(scan);
    let first = found.first()?;
    reasons.push(format!(
        "boot loader: {} unified kernel image(s) (Boot Loader Spec type #2) on {}: {}",
        found.len(),
        scan.volumes[first.vol].describe(),
        found
            .iter()
            .map(|f| f.path.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut why = "it sorts first (newest version, as systemd-boot sorts)".to_string();
    if let Some((pat, at)) = loader_default(scan, &found) {
        why = format!("/loader/loader.conf says default {pat}");
        let chosen = found.remove(at);
        found.insert(0, chosen);
    }
    for f in &found {
        match load_uki(scan, f, load) {
            Ok(mut plan) => {
                let mut all = std::mem::take(reasons);
                all.push(format!("entry \"{}\": {why}", plan.entry_title));
                all.append(&mut plan.reasons);
                plan.reasons = all;
                return Some(Ok(plan));
            }
            Err(Bad::Skip(e)) => {
                reasons.push(format!("{}: {e}; systemd-boot would not list it", f.path));
                why = "it sorts first among the images that are UKIs (newest version)".to_string();
            }
            Err(Bad::Fail(e)) => return Some(Err(format!("{}: {e}", f.path))),
        }
    }
    Some(Err(
        "no EFI/Linux/*.efi is a unified kernel image".to_string()
    ))
}

/// `default` of `/loader/loader.conf` on an image's volume, and the index
/// of the first image it matches (with or without `.efi`).
fn loader_default(scan: &DiskScan, found: &[Found]) -> Option<(String, usize)> {
    let mut vols: Vec<usize> = found.iter().map(|f| f.vol).collect();
    vols.sort_unstable();
    vols.dedup();
    vols.into_iter().find_map(|v| {
        let text = read_text(&scan.volumes[v], "/loader/loader.conf")?;
        let pat = text.lines().find_map(|l| {
            let (k, v) = l.trim().split_once(char::is_whitespace)?;
            (k == "default").then(|| v.trim().to_string())
        })?;
        // Entry names are short; a longer pattern matches none of them.
        if pat.len() > MAX_PATTERN {
            return None;
        }
        let at = found.iter().position(|f| {
            let stem = &f.name[..f.name.len() - 4];
            glob(&pat, &f.name) || glob(&pat, stem)
        })?;
        Some((pat, at))
    })
}

/// Why an image was not booted: not a UKI (left out of the menu), or a
/// UKI that cannot be loaded.
enum Bad {
    Skip(String),
    Fail(String),
}

fn len(r: &Range<u64>) -> u64 {
    r.end - r.start
}

/// Read an image's sections and make the plan (its `reasons` hold only
/// this image's lines; the caller puts the earlier ones in front).
fn load_uki(scan: &DiskScan, f: &Found, load: Load) -> Result<BootPlan, Bad> {
    let fs = &*scan.volumes[f.vol].fs;
    let fail = |e: crate::error::FsError| Bad::Fail(e.to_string());
    let size = fs.file_size(&f.path).map_err(fail)?.unwrap_or(0);
    if size > MAX_UKI_FILE {
        return Err(Bad::Fail(format!(
            "{} is more than the {} allowed for a unified kernel image",
            human_size(size),
            human_size(MAX_UKI_FILE)
        )));
    }
    let mut data = match load {
        Load::Contents => fs.read_file(&f.path, MAX_UKI_FILE),
        Load::SizesOnly => fs.read_head(&f.path, MAX_HEADERS.min(size), MAX_UKI_FILE),
    }
    .map_err(fail)?
    .unwrap_or_default();
    if load == Load::Contents && data.len() as u64 != size {
        return Err(Bad::Fail("the file changed size while being read".into()));
    }
    let sections = pe::sections(&data, size).map_err(|e| Bad::Skip(e.to_string()))?;
    let u = pe::uki(&sections).map_err(|e| Bad::Skip(e.to_string()))?;
    let linux = u
        .linux
        .clone()
        .ok_or(Bad::Skip("no .linux section".into()))?;
    check_caps(&linux, u.initrd.as_ref())?;
    let small = [&u.cmdline, &u.osrel, &u.uname];
    let small_end = small
        .iter()
        .filter_map(|r| r.as_ref())
        .filter(|r| len(r) <= MAX_SMALL)
        .map(|r| r.end)
        .max();
    if let Some(end) = small_end.filter(|&e| e > data.len() as u64 && e <= MAX_PREFIX) {
        data = fs
            .read_head(&f.path, end, MAX_UKI_FILE)
            .map_err(fail)?
            .unwrap_or_default();
    }
    let text = |r: &Option<Range<u64>>| {
        let r = r.as_ref().filter(|r| len(r) <= MAX_SMALL)?;
        let b = pe::slice(&data, r)?;
        let b = b.split(|&c| c == 0).next().unwrap_or(b);
        Some(String::from_utf8_lossy(b).trim().to_string())
    };
    let cmdline = text(&u.cmdline);
    let title = text(&u.osrel)
        .and_then(|o| pe::pretty_name(&o))
        .unwrap_or_else(|| f.name.clone());
    let mut why = vec![format!(
        "unified kernel image {} {} {}: .linux {}{}{}",
        f.path,
        if load == Load::Contents {
            "read from"
        } else {
            "found on"
        },
        scan.volumes[f.vol].describe(),
        human_size(len(&linux)),
        u.initrd
            .as_ref()
            .map(|r| format!(", .initrd {}", human_size(len(r))))
            .unwrap_or_default(),
        text(&u.uname)
            .map(|n| format!(", .uname {n}"))
            .unwrap_or_default(),
    )];
    if cmdline.is_none() {
        why.push("it has no .cmdline section: the kernel gets no arguments from it".into());
    }
    let kernel = match load {
        Load::Contents => pe::slice(&data, &linux).unwrap_or_default().to_vec(),
        Load::SizesOnly => Vec::new(),
    };
    why.extend(kernel_note(&f.path, &kernel, load));
    if let Some(problem) = crate::load::kernel_arch_problem(&kernel) {
        return Err(Bad::Fail(format!(".linux {problem}")));
    }
    let initrd = u.initrd.as_ref().map(|r| match load {
        // The initrd is cut out in place: it is most of the file.
        Load::Contents => {
            data.truncate(r.end as usize);
            data.drain(..r.start as usize);
            data
        }
        Load::SizesOnly => Vec::new(),
    });
    why.push(format!(
        "command line from .cmdline: \"{}\"",
        cmdline.clone().unwrap_or_default()
    ));
    Ok(BootPlan {
        kernel_size: len(&linux),
        kernel,
        initrd_size: u.initrd.as_ref().map(len),
        initrd,
        cmdline: cmdline.unwrap_or_default(),
        kernel_path: format!("{} (.linux)", f.path),
        initrd_path: u.initrd.as_ref().map(|_| format!("{} (.initrd)", f.path)),
        partition: scan.volumes[f.vol].info.clone(),
        entry_title: title,
        reasons: why,
    })
}

/// A Boot Loader Spec entry whose `efi` key names a UKI: load the image
/// from the entry's volume. Its `options`, when given, replace `.cmdline`,
/// as systemd 252's stub does for options its loader passes without
/// Secure Boot (ovf-run boots without it).
pub(super) fn load_bls_efi(
    scan: &DiskScan,
    e: &BootEntry,
    cfg_vol: Option<usize>,
    load: Load,
    reasons: &mut Vec<String>,
) -> Result<BootPlan, String> {
    let (_, path) = split_device(&e.kernel);
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let found = Found {
        vol: cfg_vol.unwrap_or(0),
        name: path.rsplit('/').next().unwrap_or("").to_string(),
        path,
    };
    if found.vol >= scan.volumes.len() {
        return Err(format!("entry \"{}\": no volume for {}", e.title, e.kernel));
    }
    let mut plan = load_uki(scan, &found, load).map_err(|b| match b {
        Bad::Skip(m) | Bad::Fail(m) => format!("entry \"{}\": efi {}: {m}", e.title, found.path),
    })?;
    if !e.args.is_empty() {
        plan.reasons.push(format!(
            "the entry's options replace the image's .cmdline (the stub takes its loader's options without Secure Boot): \"{}\"",
            e.args
        ));
        plan.cmdline = e.args.clone();
    }
    plan.entry_title = e.title.clone();
    let mut all = std::mem::take(reasons);
    all.append(&mut plan.reasons);
    plan.reasons = all;
    Ok(plan)
}

fn check_caps(linux: &Range<u64>, initrd: Option<&Range<u64>>) -> Result<(), Bad> {
    let too_big = |what: &str, n: u64, max: u64| {
        Bad::Fail(format!(
            "{what} is {}, more than the {} allowed",
            human_size(n),
            human_size(max)
        ))
    };
    if len(linux) > MAX_KERNEL {
        return Err(too_big(".linux", len(linux), MAX_KERNEL));
    }
    match initrd {
        Some(r) if len(r) > MAX_INITRD => Err(too_big(".initrd", len(r), MAX_INITRD)),
        _ => Ok(()),
    }
}
