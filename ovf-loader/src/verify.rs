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
    pub manifest: Option<String>,
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

pub fn verify(pkg: &Package, opts: &VerifyOptions) -> Result<VerifyReport, PackageError> {
    let mut report = VerifyReport {
        manifest: None,
        files: Vec::new(),
        certificate: None,
        problems: Vec::new(),
        warnings: Vec::new(),
    };

    // Every file the descriptor references must be there, whatever the manifest says.
    let mut referenced: Vec<String> = vec![pkg.descriptor_name.clone()];
    for r in &pkg.envelope.references {
        match pkg.locate(&r.id) {
            Ok(loc) => {
                if loc.extents.len() > 1 {
                    referenced
                        .extend((0..loc.extents.len()).map(|i| format!("{}.{i:09}", loc.name)));
                } else {
                    referenced.push(loc.name.clone());
                }
            }
            Err(e) => {
                let missing = matches!(e, PackageError::MissingFile { .. });
                report.problems.push(e.to_string());
                if let Ok(name) = pkg.check_href(&r.href).map_err(|_| ()).and_then(|n| {
                    if missing {
                        Ok(n)
                    } else {
                        Err(())
                    }
                }) {
                    report.files.push(FileCheck {
                        name,
                        algorithm: None,
                        size: None,
                        status: FileStatus::Missing,
                    });
                }
            }
        }
    }

    let Some(mf_name) = pkg.manifest_name() else {
        report
            .warnings
            .push("the package has no manifest (.mf): file contents cannot be checked".into());
        return Ok(report);
    };
    let mf_bytes = pkg.read_small(&mf_name, MAX_SMALL_FILE)?;
    report.manifest = Some(mf_name.clone());
    let entries = match manifest::parse(&mf_name, &mf_bytes) {
        Ok(entries) => entries,
        Err(e) => {
            report.problems.push(e.to_string());
            return Ok(report);
        }
    };

    for entry in &entries {
        let check = check_entry(pkg, entry, opts);
        match &check.status {
            FileStatus::Ok => {}
            FileStatus::Mismatch { .. } => report.problems.push(format!(
                "{}: {} digest does not match the manifest: the file is damaged or was changed",
                entry.name,
                entry.algorithm.name()
            )),
            FileStatus::Missing => report.problems.push(format!(
                "{}: listed in the manifest but not in the package",
                entry.name
            )),
            FileStatus::Unreadable { error } => report
                .problems
                .push(format!("{}: cannot be read: {error}", entry.name)),
            FileStatus::NotInManifest => {}
        }
        report.files.push(check);
    }
    for name in &referenced {
        if !entries.iter().any(|e| &e.name == name) && !report.files.iter().any(|f| &f.name == name)
        {
            report.problems.push(format!(
                "{name}: used by the descriptor but not listed in the manifest"
            ));
            report.files.push(FileCheck {
                name: name.clone(),
                algorithm: None,
                size: None,
                status: FileStatus::NotInManifest,
            });
        }
    }
    let cert_name = pkg.certificate_name();
    for name in pkg.file_names() {
        let companion = Some(&name) == cert_name.as_ref() || name == mf_name;
        if !companion && !entries.iter().any(|e| e.name == name) && !referenced.contains(&name) {
            report
                .warnings
                .push(format!("{name}: in the package but not in the manifest"));
        }
    }

    if let Some(cert_name) = cert_name {
        let text = pkg.read_small(&cert_name, MAX_SMALL_FILE)?;
        match cert::check(
            &cert_name,
            &text,
            &mf_name,
            &mf_bytes,
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
    } else if opts.require_trusted {
        report
            .problems
            .push("the package is not signed (no .cert) and --require-trusted was given".into());
    }
    Ok(report)
}

fn check_entry(pkg: &Package, entry: &manifest::ManifestEntry, opts: &VerifyOptions) -> FileCheck {
    let mut check = FileCheck {
        name: entry.name.clone(),
        algorithm: Some(entry.algorithm),
        size: None,
        status: FileStatus::Ok,
    };
    let extent = match pkg.locate_name(&entry.name) {
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
            p(&entry.name, done, extent.len)
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
