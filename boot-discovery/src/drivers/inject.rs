//! Decide what the initramfs lacks for virtio and build the cpio archive
//! that adds it: module files copied from the appliance's own root
//! filesystem (compression kept), a `modules.dep`/`modules.dep.bin` that
//! knows them, and the lists that make the initramfs load them early.

use super::facts::{Generator, InitramfsFacts};
use super::kmod_index::modules_dep_bin;
use super::modules::{module_name, parse_builtin, ModDep};
use super::{DriverError, DriverReport, ModuleState, State, VIRTIO};
use crate::fs::BootFs;
use crate::initramfs::{cpio::Writer, normalise};
use std::collections::BTreeSet;

/// A module file larger than this is not a driver we want.
const MAX_MODULE: u64 = 32 << 20;
/// All added files together.
const MAX_ADDED: u64 = 128 << 20;
/// `modules.dep` of a distribution kernel is ~600 KiB.
const MAX_INDEX: u64 = 16 << 20;
pub const LOAD_CONF: &str = "etc/modules-load.d/ovf-run-virtio.conf";

/// The module tree of the release on the appliance's root filesystem.
pub struct RootModules<'a> {
    pub fs: &'a dyn BootFs,
    /// `/lib/modules/6.1.0-13-amd64` (or under `/usr`).
    pub dir: String,
    pub dep: ModDep,
    pub builtin: BTreeSet<String>,
}

impl<'a> RootModules<'a> {
    /// The release's module tree on `fs` under `prefix` (where the
    /// mounted root's files are: `""`, or `/@` for a btrfs subvolume), if
    /// it has one.
    pub fn open(fs: &'a dyn BootFs, prefix: &str, rel: &str) -> Result<Option<Self>, DriverError> {
        for base in ["/lib/modules", "/usr/lib/modules"] {
            let dir = format!("{prefix}{base}/{rel}");
            let read = |name: &str| {
                let path = format!("{dir}/{name}");
                fs.read_file(&path, MAX_INDEX)
                    .map_err(|source| DriverError::RootFs { path, source })
            };
            let Some(dep) = read("modules.dep")? else {
                continue;
            };
            let builtin = read("modules.builtin")?.unwrap_or_default();
            return Ok(Some(RootModules {
                fs,
                dep: ModDep::parse(&String::from_utf8_lossy(&dep)),
                builtin: parse_builtin(&String::from_utf8_lossy(&builtin)),
                dir,
            }));
        }
        Ok(None)
    }
}

/// What has to change, decided from the facts alone.
struct Needs {
    /// Paths (as `modules.dep` writes them) to copy in, dependencies first.
    add: Vec<String>,
    /// Top-level modules to name in the early-load lists.
    list: Vec<String>,
}

/// Fill in the report's module states and problems, and say what to add.
fn decide(
    f: &InitramfsFacts,
    rel: &str,
    root: Option<&RootModules>,
    report: &mut DriverReport,
) -> Needs {
    let dep = root.map(|r| &r.dep).or(f.moddep.as_ref());
    let builtin = |n: &str| f.builtin.contains(n) || root.is_some_and(|r| r.builtin.contains(n));
    let mut needs = Needs {
        add: Vec::new(),
        list: Vec::new(),
    };
    for top in VIRTIO {
        let present = f.modules.contains_key(top);
        let (state, early) = if builtin(top) {
            (State::BuiltIn, true)
        } else {
            let (closure, unknown) =
                dep.map_or((vec![], vec![top.to_string()]), |d| d.closure(&[top]));
            let lacking: Vec<&String> = closure
                .iter()
                .filter(|p| {
                    module_name(p).is_some_and(|n| !builtin(&n) && !f.modules.contains_key(&n))
                })
                .collect();
            let early = f.listed.contains(top) || (present && f.udev_autoload);
            if !unknown.is_empty() && !present {
                report.problems.push(format!(
                    "the kernel {rel} has no {top} driver: it is not built in and there is no {top} module in the initramfs{}",
                    if root.is_some() { " or in its module tree on the disk" } else { "" }
                ));
                (State::Absent, false)
            } else if lacking.is_empty() && early {
                (State::InInitramfs, true)
            } else if !lacking.is_empty() && root.is_none() {
                report.problems.push(format!(
                    "{top} needs {} that the initramfs lacks, and /lib/modules/{rel} was not found on any filesystem of the disk",
                    names(&lacking)
                ));
                (
                    if present {
                        State::InInitramfs
                    } else {
                        State::Absent
                    },
                    false,
                )
            } else {
                for p in lacking {
                    if !needs.add.contains(p) {
                        report.missing.extend(module_name(p));
                        needs.add.push(p.clone());
                    }
                }
                if present && !early {
                    report.not_loaded_early.push(top.to_string());
                }
                needs.list.push(top.to_string());
                (
                    if present {
                        State::InInitramfs
                    } else {
                        State::Added
                    },
                    true,
                )
            }
        };
        report.modules.push(ModuleState {
            name: top.to_string(),
            state,
            loads_early: early,
        });
    }
    needs
}

fn names(paths: &[&String]) -> String {
    paths
        .iter()
        .filter_map(|p| module_name(p))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Decide, and build the archive to append when something must change.
pub fn plan(
    f: &InitramfsFacts,
    rel: &str,
    root: Option<&RootModules>,
    report: &mut DriverReport,
) -> Result<(), DriverError> {
    let needs = decide(f, rel, root, report);
    if needs.add.is_empty() && needs.list.is_empty() {
        return Ok(());
    }
    let prefix = f
        .module_dirs
        .get(rel)
        .cloned()
        .unwrap_or_else(|| format!("lib/modules/{rel}"));
    let mut out = Archive {
        w: Writer::new(),
        made: BTreeSet::new(),
        existing: &f.names,
    };
    if let Some(root) = root.filter(|_| !needs.add.is_empty()) {
        let mut total = 0u64;
        for p in &needs.add {
            let (src, dst) = match p.strip_prefix('/') {
                Some(abs) => (p.clone(), normalise(abs).to_string()),
                None => (format!("{}/{p}", root.dir), format!("{prefix}/{p}")),
            };
            let data = root
                .fs
                .read_file(&src, MAX_MODULE)
                .map_err(|source| DriverError::RootFs {
                    path: src.clone(),
                    source,
                })?
                .ok_or_else(|| DriverError::ModuleFileMissing { path: src.clone() })?;
            total += data.len() as u64;
            if total > MAX_ADDED {
                return Err(DriverError::TooMuch { limit: MAX_ADDED });
            }
            out.file(&dst, &data);
            report.added.push(dst);
        }
        let dep = merged_dep(f, root, &needs.add);
        out.file(&format!("{prefix}/modules.dep"), dep.render().as_bytes());
        out.file(&format!("{prefix}/modules.dep.bin"), &modules_dep_bin(&dep));
    }
    let lines: String = needs.list.iter().map(|m| format!("{m}\n")).collect();
    if f.generator != Generator::Dracut {
        let mut conf = f.conf_modules.clone().unwrap_or_default();
        if !conf.is_empty() && !conf.ends_with(b"\n") {
            conf.push(b'\n');
        }
        conf.extend_from_slice(b"# added by ovf-run: virtio drivers\n");
        conf.extend_from_slice(lines.as_bytes());
        out.file("conf/modules", &conf);
    }
    if f.generator != Generator::InitramfsTools {
        out.file(LOAD_CONF, format!("# added by ovf-run\n{lines}").as_bytes());
        report
            .cmdline_extra
            .push(format!("rd.driver.pre={}", needs.list.join(",")));
    }
    report.appended_cpio = Some(out.w.finish());
    Ok(())
}

/// The initramfs' own `modules.dep` (or, without one, the root's entries
/// for the modules it holds) plus the added modules.
fn merged_dep(f: &InitramfsFacts, root: &RootModules, added: &[String]) -> ModDep {
    let mut dep = f.moddep.clone().unwrap_or_else(|| ModDep {
        entries: root
            .dep
            .entries
            .iter()
            .filter(|(n, _)| f.modules.contains_key(*n))
            .map(|(n, e)| (n.clone(), e.clone()))
            .collect(),
    });
    for p in added {
        if let Some((n, e)) = module_name(p).and_then(|n| root.dep.entries.get(&n).map(|e| (n, e)))
        {
            dep.entries.insert(n, e.clone());
        }
    }
    dep
}

/// The archive being built, with parent directories created once and
/// only where the initramfs has none (an existing `lib` may be a link).
struct Archive<'a> {
    w: Writer,
    made: BTreeSet<String>,
    existing: &'a BTreeSet<String>,
}

impl Archive<'_> {
    fn file(&mut self, name: &str, data: &[u8]) {
        let mut at = 0;
        while let Some(i) = name[at..].find('/') {
            let dir = &name[..at + i];
            if !self.existing.contains(dir) && self.made.insert(dir.to_string()) {
                self.w.dir(dir);
            }
            at += i + 1;
        }
        self.w.file(name, 0o644, data);
    }
}
