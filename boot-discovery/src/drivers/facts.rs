//! What an initramfs holds that matters for virtio: which generator made
//! it, its module directories, module files and built-in list, and what
//! would load modules early (explicit lists, or udev by modalias).

use super::modules::{module_name, parse_builtin, parse_list, ModDep};
use crate::initramfs::{Initramfs, Segment};
use std::collections::{BTreeMap, BTreeSet};

/// Which tool built the initramfs: it decides how to ask for early loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generator {
    /// Debian/Ubuntu `mkinitramfs`: `conf/modules` is loaded by `init`.
    InitramfsTools,
    /// Fedora/RHEL/SUSE `dracut`: `rd.driver.pre=`, `/etc/modules-load.d`.
    Dracut,
    Unknown,
}

impl Generator {
    pub fn name(self) -> &'static str {
        match self {
            Generator::InitramfsTools => "initramfs-tools",
            Generator::Dracut => "dracut",
            Generator::Unknown => "unknown generator",
        }
    }
}

/// The initramfs, as far as drivers go.
#[derive(Debug, Clone)]
pub struct InitramfsFacts {
    pub generator: Generator,
    /// Kernel release → its module directory (`lib/modules/6.1.0-13-amd64`
    /// or `usr/lib/modules/…`).
    pub module_dirs: BTreeMap<String, String>,
    /// Module name → entry name of its file.
    pub modules: BTreeMap<String, String>,
    /// Modules the initramfs' `modules.builtin` lists.
    pub builtin: BTreeSet<String>,
    /// Modules `conf/modules` or a `modules-load.d` file asks for.
    pub listed: BTreeSet<String>,
    /// udevd is there and so is a `modules.alias` index: devices' drivers
    /// present in the initramfs load by modalias, the usual way.
    pub udev_autoload: bool,
    /// The initramfs' own `modules.dep` (text), when it has one.
    pub moddep: Option<ModDep>,
    /// `conf/modules` as it is: an appended copy must keep its lines.
    pub conf_modules: Option<Vec<u8>>,
    /// Every entry name (to know which directories exist).
    pub names: BTreeSet<String>,
    pub segments: Vec<Segment>,
}

/// `(usr/)lib/modules/<release>/rest` → (module dir, release, rest).
fn module_path(name: &str) -> Option<(&str, &str, &str)> {
    let start = if name.starts_with("usr/lib/modules/") {
        "usr/lib/modules/".len()
    } else if name.starts_with("lib/modules/") {
        "lib/modules/".len()
    } else {
        return None;
    };
    let (rel, rest) = name[start..].split_once('/')?;
    Some((&name[..start + rel.len()], rel, rest))
}

fn is_load_list(name: &str) -> bool {
    (name.starts_with("etc/modules-load.d/") || name.starts_with("usr/lib/modules-load.d/"))
        && name.ends_with(".conf")
}

/// Which entries [`gather`] needs the data of (all small text files).
pub fn keep(name: &str) -> bool {
    name == "conf/modules"
        || is_load_list(name)
        || module_path(name)
            .is_some_and(|(_, _, rest)| rest == "modules.builtin" || rest == "modules.dep")
}

/// Sort an initramfs' entries into [`InitramfsFacts`]. Read it with
/// [`keep`] so the files looked at here have their data.
pub fn gather(ird: &Initramfs) -> InitramfsFacts {
    let mut f = InitramfsFacts {
        generator: Generator::Unknown,
        module_dirs: BTreeMap::new(),
        modules: BTreeMap::new(),
        builtin: BTreeSet::new(),
        listed: BTreeSet::new(),
        udev_autoload: false,
        moddep: None,
        conf_modules: None,
        names: BTreeSet::new(),
        segments: ird.segments.clone(),
    };
    let (mut udevd, mut alias, mut tools, mut dracut) = (false, false, false, false);
    for e in &ird.entries {
        let n = e.name.as_str();
        f.names.insert(e.name.clone());
        tools |= n == "conf/initramfs.conf" || n == "scripts/functions";
        dracut |= n.starts_with("usr/lib/dracut/") || n.ends_with("dracut-lib.sh");
        udevd |= n.ends_with("/systemd-udevd") || n.ends_with("sbin/udevd");
        let text = || String::from_utf8_lossy(e.data.as_deref().unwrap_or_default()).into_owned();
        if n == "conf/modules" {
            f.listed.extend(parse_list(&text()));
            f.conf_modules = e.data.clone();
        } else if is_load_list(n) {
            f.listed.extend(parse_list(&text()));
        }
        let Some((dir, rel, rest)) = module_path(n) else {
            continue;
        };
        f.module_dirs
            .entry(rel.to_string())
            .or_insert_with(|| dir.to_string());
        alias |= rest == "modules.alias.bin" || rest == "modules.alias";
        match rest {
            "modules.builtin" => f.builtin.extend(parse_builtin(&text())),
            "modules.dep" => f.moddep = Some(ModDep::parse(&text())),
            _ if e.is_file() => {
                if let Some(m) = module_name(rest) {
                    f.modules.insert(m, e.name.clone());
                }
            }
            _ => {}
        }
    }
    f.generator = match (tools, dracut) {
        (true, false) => Generator::InitramfsTools,
        (false, true) => Generator::Dracut,
        _ => Generator::Unknown,
    };
    f.udev_autoload = udevd && alias;
    f
}
