//! Which host files make up a package, and whether a path is one of them:
//! a command that writes (export-disk) must never replace a file the
//! package it reads is made of. Files are compared by device and inode (so
//! hard links, symlinks and `..` spellings are caught) and, for paths that
//! do not exist yet, by the parent folder's device and inode plus the name.

use crate::package::{Package, PackageKind};
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Every host file the package is made of (some may be missing): the
/// archive for an OVA; for a folder package the descriptor, its manifest
/// and certificate, every referenced file and the chunks of chunked ones.
pub fn package_files(pkg: &Package) -> Vec<PathBuf> {
    if pkg.kind == PackageKind::Ova {
        return vec![pkg.path.clone()];
    }
    let base = pkg
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut files = vec![pkg.path.clone()];
    files.extend(pkg.file_names().iter().map(|n| base.join(n)));
    for r in &pkg.envelope.references {
        let (Some(_), Ok(name)) = (r.chunk_size, pkg.check_href(&r.href)) else {
            continue;
        };
        // Chunks are numbered from 0 without gaps; one past the last is
        // included so that an output cannot add a chunk either.
        for index in 0u32.. {
            let chunk = base.join(format!("{name}.{index:09}"));
            let exists = chunk.exists();
            files.push(chunk);
            if !exists {
                break;
            }
        }
    }
    files
}

/// (device, inode) of a path's folder, and its last component.
fn folder_key(path: &Path) -> Option<((u64, u64), OsString)> {
    let name = path.file_name()?.to_os_string();
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let meta = std::fs::metadata(parent).ok()?;
    Some(((meta.dev(), meta.ino()), name))
}

fn file_key(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The package file `output` would overwrite, if any.
pub fn package_file_at(pkg: &Package, output: &Path) -> Option<PathBuf> {
    let out_file = file_key(output);
    let out_folder = folder_key(output);
    package_files(pkg).into_iter().find(|own| {
        (out_file.is_some() && file_key(own) == out_file)
            || (out_folder.is_some() && folder_key(own) == out_folder)
    })
}
