//! Which files make up a package, and which of them are its manifests and
//! its certificate.
//!
//! Every manifest is read, as virt-v2v does: every `.mf` member of an OVA
//! (one per disk is common), and in a folder package every `*.mf` beside the
//! descriptor, whatever its name. A manifest named after the descriptor
//! (`vm.ovf` → `vm.mf`) is the *primary* one: the one a certificate signs.

use crate::package::{Package, PackageKind};

fn has_ext(name: &str, ext: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, e)| e.eq_ignore_ascii_case(ext))
}

impl Package {
    /// Names of every file in the package (members of an OVA; for a folder
    /// package the descriptor, every `*.mf` and `*.cert` beside it and the
    /// files the descriptor references).
    pub fn file_names(&self) -> Vec<String> {
        match self.kind {
            PackageKind::Ova => self.members.iter().map(|m| m.name.clone()).collect(),
            PackageKind::Ovf => {
                let mut names = vec![self.descriptor_name.clone()];
                names.extend(self.folder_files_with(&["mf", "cert"]));
                for r in &self.envelope.references {
                    if let Ok(name) = self.check_href(&r.href) {
                        if !names.contains(&name) {
                            names.push(name);
                        }
                    }
                }
                names
            }
        }
    }

    /// Regular files beside a folder package's descriptor with one of `exts`, sorted.
    fn folder_files_with(&self, exts: &[&str]) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.base_dir()) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| exts.iter().any(|x| has_ext(n, x)))
            .collect();
        names.sort();
        names
    }

    /// Every manifest of the package, primary first.
    pub fn manifest_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .file_names()
            .into_iter()
            .filter(|n| has_ext(n, "mf"))
            .collect();
        if let Some(primary) = self.companion("mf") {
            names.retain(|n| *n != primary);
            names.insert(0, primary);
        }
        names
    }

    /// The manifest a certificate signs: named after the descriptor, else the first.
    pub fn manifest_name(&self) -> Option<String> {
        self.companion("mf")
    }

    /// The signing certificate (`*.cert`) name, if the package has one.
    pub fn certificate_name(&self) -> Option<String> {
        self.companion("cert")
    }

    /// `<descriptor stem>.<ext>` if present, else the first file with that extension.
    fn companion(&self, ext: &str) -> Option<String> {
        let stem = self
            .descriptor_name
            .rsplit_once('.')
            .map(|(s, _)| s)
            .unwrap_or(&self.descriptor_name);
        let wanted = format!("{stem}.{ext}");
        let names = self.file_names();
        names
            .iter()
            .find(|n| **n == wanted)
            .or_else(|| names.iter().find(|n| has_ext(n, ext)))
            .cloned()
    }

    /// The folder inside the package that names in manifest `mf` are relative to.
    pub fn folder_of(name: &str) -> &str {
        name.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
    }
}
