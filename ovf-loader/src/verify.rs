//! Package verification: manifest digests, coverage, and the signature.

use crate::cert::{self, CertificateReport};
use crate::manifest::{self, Algorithm};
use crate::package::{Package, PackageError};
use serde::Serialize;

#[derive(Default)]
pub struct VerifyOptions<'a> {
    /// Extra trusted certificates (PEM), beside the system CA store.
    pub trust_pem: Option<Vec<u8>>,
    /// An untrusted (e.g. self-signed) signature is a failure, not a warning.
    pub require_trusted: bool,
    /// Called with (file name, bytes hashed so far, file size).
    pub progress: Option<&'a (dyn Fn(&str, u64, u64) + Sync)>,
    /// Check only these package files (and the descriptor and signature):
    /// what `export-disk` needs for the one disk it writes.
    pub only_files: Option<&'a [String]>,
}

impl VerifyOptions<'_> {
    fn wanted(&self, name: &str) -> bool {
        self.only_files
            .is_none_or(|only| only.iter().any(|n| n == name))
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum FileStatus {
    Ok,
    Mismatch {
        expected: String,
        actual: String,
    },
    Missing,
    /// In the package (or referenced) but not listed in the manifest.
    NotInManifest,
    Unreadable {
        error: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct FileCheck {
    pub name: String,
    pub algorithm: Option<Algorithm>,
    pub size: Option<u64>,
    #[serde(flatten)]
    pub status: FileStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The primary manifest (the one a certificate signs).
    pub manifest: Option<String>,
    /// Every manifest read, primary first.
    pub manifests: Vec<String>,
    pub files: Vec<FileCheck>,
    pub certificate: Option<CertificateReport>,
    /// What makes the package fail verification.
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Largest manifest or certificate read (they are a few KiB).
const MAX_SMALL_FILE: u64 = 4 << 20;

/// Verify a package. The rules (docs/package-reading.md): every manifest is
/// read; a listed file that does not match or is absent fails, and so does a
/// file the descriptor uses that no manifest lists (when any manifest
/// exists) and a bad signature; an unlisted descriptor, unreadable manifest
/// lines and a stale `ovf:size` are warnings.
pub fn verify(pkg: &Package, opts: &VerifyOptions) -> Result<VerifyReport, PackageError> {
    let mut report = VerifyReport {
        manifest: None,
        manifests: pkg.manifest_names(),
        files: Vec::new(),
        certificate: None,
        problems: Vec::new(),
        // The package's own warnings (stale ovf:size, inflated archive) are
        // in `pkg.warnings`; callers show them once.
        warnings: Vec::new(),
    };
    let referenced = referenced_files(pkg, opts, &mut report);
    if report.manifests.is_empty() {
        report
            .warnings
            .push("the package has no manifest (.mf): file contents cannot be checked".into());
        if opts.require_trusted {
            report.problems.push(
                "the package is not signed (no .mf or .cert) and --require-trusted was given"
                    .into(),
            );
        }
        return Ok(report);
    }
    report.manifest = report.manifests.first().cloned();
    let mut listed: Vec<String> = Vec::new();
    let mut primary_bytes = Vec::new();
    let mut primary_listed: Vec<String> = Vec::new();
    for (index, mf_name) in report.manifests.clone().iter().enumerate() {
        let mf_bytes = pkg.read_small(mf_name, MAX_SMALL_FILE)?;
        let parsed = match manifest::parse_lenient(mf_name, &mf_bytes) {
            Ok(p) => p,
            Err(e) => {
                report.problems.push(e.to_string());
                continue;
            }
        };
        if index == 0 {
            primary_bytes = mf_bytes;
        }
        for bad in &parsed.bad_lines {
            report
                .warnings
                .push(format!("{bad}; the line is ignored (as virt-v2v does)"));
        }
        if parsed.entries.is_empty() {
            report
                .warnings
                .push(format!("{mf_name}: the manifest lists no files"));
        }
        let folder = Package::folder_of(mf_name);
        for entry in &parsed.entries {
            let Some(name) = pkg.normalise_in(folder, &entry.name) else {
                report.problems.push(format!(
                    "{mf_name}, line {}: '{}' points outside the package",
                    entry.line, entry.name
                ));
                continue;
            };
            if opts.wanted(&name) || name == pkg.descriptor_name {
                check_listed(pkg, &name, entry, opts, &mut report);
            }
            if index == 0 {
                primary_listed.push(name.clone());
            }
            listed.push(name);
        }
    }
    check_coverage(pkg, &referenced, &listed, opts, &mut report);
    check_certificate(pkg, &primary_bytes, opts, &mut report)?;
    if report.certificate.is_some() {
        // A signature vouches for its manifest only: a file the descriptor
        // uses must be in the signed one, not just in some other manifest.
        let signed = report.manifest.clone().unwrap_or_default();
        for name in referenced.iter().filter(|n| !primary_listed.contains(n)) {
            if listed.contains(name) {
                report.problems.push(format!(
                    "{name}: not listed in the signed manifest {signed} (only in an unsigned one)"
                ));
            }
        }
    }
    Ok(report)
}

/// Every file the descriptor references must be there, whatever the manifests say.
fn referenced_files(pkg: &Package, opts: &VerifyOptions, report: &mut VerifyReport) -> Vec<String> {
    let mut referenced = Vec::new();
    for r in &pkg.envelope.references {
        if pkg.check_href(&r.href).is_ok_and(|n| !opts.wanted(&n)) {
            continue;
        }
        match pkg.locate(&r.id) {
            Ok(loc) if loc.extents.len() > 1 => {
                referenced.extend((0..loc.extents.len()).map(|i| format!("{}.{i:09}", loc.name)))
            }
            Ok(loc) => referenced.push(loc.name.clone()),
            Err(e) => {
                if let (PackageError::MissingFile { .. }, Ok(name)) = (&e, pkg.check_href(&r.href))
                {
                    report.files.push(FileCheck {
                        name,
                        algorithm: None,
                        size: None,
                        status: FileStatus::Missing,
                    });
                }
                report.problems.push(e.to_string());
            }
        }
    }
    referenced
}

/// Hash one listed file and record the outcome.
fn check_listed(
    pkg: &Package,
    name: &str,
    entry: &manifest::ManifestEntry,
    opts: &VerifyOptions,
    report: &mut VerifyReport,
) {
    let check = check_entry(pkg, name, entry, opts);
    match &check.status {
        FileStatus::Ok | FileStatus::NotInManifest => {}
        FileStatus::Mismatch { .. } => report.problems.push(format!(
            "{name}: {} digest does not match the manifest: the file is damaged or was changed",
            entry.algorithm.name()
        )),
        FileStatus::Missing => report.problems.push(format!(
            "{name}: listed in the manifest but not in the package"
        )),
        FileStatus::Unreadable { error } => report
            .problems
            .push(format!("{name}: cannot be read: {error}")),
    }
    report.files.push(check);
}

/// With manifests present, every file the descriptor uses must be listed;
/// the descriptor itself and other files unlisted are warnings.
fn check_coverage(
    pkg: &Package,
    referenced: &[String],
    listed: &[String],
    opts: &VerifyOptions,
    report: &mut VerifyReport,
) {
    for name in referenced {
        if !listed.contains(name) && !report.files.iter().any(|f| &f.name == name) {
            report.problems.push(format!(
                "{name}: used by the descriptor but not listed in any manifest"
            ));
            report.files.push(FileCheck {
                name: name.clone(),
                algorithm: None,
                size: None,
                status: FileStatus::NotInManifest,
            });
        }
    }
    if !listed.contains(&pkg.descriptor_name) {
        report.warnings.push(format!(
            "{}: the descriptor is not listed in any manifest, so its contents are not checked (virt-v2v warns the same)",
            pkg.descriptor_name
        ));
    }
    let cert_name = pkg.certificate_name();
    if opts.only_files.is_some() {
        return;
    }
    for name in pkg.file_names() {
        let companion = Some(&name) == cert_name.as_ref() || report.manifests.contains(&name);
        if !companion
            && name != pkg.descriptor_name
            && !listed.contains(&name)
            && !referenced.contains(&name)
        {
            report
                .warnings
                .push(format!("{name}: in the package but not in any manifest"));
        }
    }
}

fn check_certificate(
    pkg: &Package,
    manifest_bytes: &[u8],
    opts: &VerifyOptions,
    report: &mut VerifyReport,
) -> Result<(), PackageError> {
    let Some(mf_name) = report.manifest.clone() else {
        return Ok(());
    };
    let Some(cert_name) = pkg.certificate_name() else {
        if opts.require_trusted {
            report.problems.push(
                "the package is not signed (no .cert) and --require-trusted was given".into(),
            );
        }
        return Ok(());
    };
    let text = pkg.read_small(&cert_name, MAX_SMALL_FILE)?;
    // The signature line names the manifest as it sits beside the certificate.
    let signed_name = mf_name.rsplit('/').next().unwrap_or(&mf_name);
    match cert::check(
        &cert_name,
        &text,
        signed_name,
        manifest_bytes,
        opts.trust_pem.as_deref(),
    ) {
        Ok(c) => {
            if !c.signature_valid {
                report.problems.push(format!(
                    "{cert_name}: the signature over {mf_name} is not valid"
                ));
            }
            if c.expired_or_not_yet_valid {
                report.warnings.push(format!(
                    "{cert_name}: the certificate is outside its validity period ({} to {})",
                    c.not_before, c.not_after
                ));
            }
            if !c.trusted {
                let why = if c.self_signed {
                    "self-signed".to_string()
                } else {
                    c.trust_problem.clone().unwrap_or_default()
                };
                let msg = format!(
                    "{cert_name}: the signer ({}) is not trusted: {why}",
                    c.subject
                );
                if opts.require_trusted {
                    report.problems.push(msg);
                } else {
                    report.warnings.push(msg);
                }
            }
            report.certificate = Some(c);
        }
        Err(e) => report.problems.push(e.to_string()),
    }
    Ok(())
}

fn check_entry(
    pkg: &Package,
    name: &str,
    entry: &manifest::ManifestEntry,
    opts: &VerifyOptions,
) -> FileCheck {
    let mut check = FileCheck {
        name: name.to_string(),
        algorithm: Some(entry.algorithm),
        size: None,
        status: FileStatus::Ok,
    };
    let extent = match pkg.locate_name(name) {
        Ok(Some(e)) => e,
        Ok(None) => {
            check.status = FileStatus::Missing;
            return check;
        }
        Err(e) => {
            check.status = FileStatus::Unreadable {
                error: e.to_string(),
            };
            return check;
        }
    };
    check.size = Some(extent.len);
    let read_at = |buf: &mut [u8], off: u64| {
        use std::os::unix::fs::FileExt;
        extent.file.read_exact_at(buf, extent.offset + off)
    };
    let progress = |done: u64| {
        if let Some(p) = opts.progress {
            p(name, done, extent.len)
        }
    };
    check.status = match manifest::digest_stream(entry.algorithm, extent.len, &read_at, &progress) {
        Ok(actual) if actual == entry.digest => FileStatus::Ok,
        Ok(actual) => FileStatus::Mismatch {
            expected: entry.digest.clone(),
            actual,
        },
        Err(e) => FileStatus::Unreadable {
            error: e.to_string(),
        },
    };
    check
}
