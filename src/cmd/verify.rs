//! `ovf-run verify`: check a package's manifest digests and signature.

use super::{open_package, EXIT_USAGE};
use clap::Args;
use ovf_loader::verify::{verify, FileStatus, VerifyOptions, VerifyReport};
use ovf_loader::verify_cache::VerifyCache;
use ovf_loader::Package;
use ovf_run::launch::options_fingerprint;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug, Clone, Default)]
pub struct TrustArgs {
    /// Also trust the certificates in this PEM file (beside the system CA store).
    #[arg(long, value_name = "FILE")]
    pub trust: Option<PathBuf>,
    /// Fail when the signer is not trusted (by default an untrusted or
    /// self-signed signature is reported, not fatal).
    #[arg(long)]
    pub require_trusted: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The package: an .ova, or an .ovf with its files beside it.
    pub package: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Accept an earlier successful verification of the same, unchanged
    /// files with the same trust options (what starting a package does).
    #[arg(long)]
    pub cached: bool,
    #[command(flatten)]
    pub trust: TrustArgs,
}

pub fn run(args: VerifyArgs) -> ExitCode {
    let pkg = match open_package(&args.package) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut report = match verify_package(&pkg, &args.trust, args.cached) {
        Ok(r) => r,
        Err(code) => return code,
    };
    // What opening the package noticed (a stale ovf:size…) belongs in the report too.
    report.warnings.splice(0..0, pkg.warnings.iter().cloned());
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print_table(&report);
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Verify with a progress bar on a terminal; remembers success in the cache.
/// `use_cache`: accept an earlier verification of the same unchanged files.
pub fn verify_package(
    pkg: &Package,
    trust: &TrustArgs,
    use_cache: bool,
) -> Result<VerifyReport, ExitCode> {
    let trust_pem = match &trust.trust {
        Some(path) => match std::fs::read(path) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("ovf-run: --trust {}: {e}", path.display());
                return Err(ExitCode::from(EXIT_USAGE));
            }
        },
        None => None,
    };
    let fingerprint = options_fingerprint(trust_pem.as_deref(), trust.require_trusted);
    let cache = VerifyCache::default_location();
    if use_cache {
        if let Some(cache) = &cache {
            if cache.is_verified(pkg, &fingerprint) {
                return Ok(VerifyReport {
                    manifest: None,
                    manifests: Vec::new(),
                    files: Vec::new(),
                    certificate: None,
                    problems: Vec::new(),
                    warnings: vec!["verified earlier; files unchanged".into()],
                });
            }
        }
    }
    let bar = super::progress::ByteProgress::new();
    let progress = |name: &str, done: u64, total: u64| bar.update(name, done, total);
    let opts = VerifyOptions {
        trust_pem,
        require_trusted: trust.require_trusted,
        progress: Some(&progress),
        only_files: None,
    };
    let report = verify(pkg, &opts).map_err(|e| {
        eprintln!("ovf-run: {e}");
        ExitCode::FAILURE
    })?;
    bar.finish();
    if report.ok() {
        if let Some(cache) = &cache {
            cache.remember(pkg, &fingerprint);
        }
    }
    Ok(report)
}

fn print_table(r: &VerifyReport) {
    match r.manifests.as_slice() {
        [] => {}
        [one] => println!("Manifest: {one}"),
        many => println!("Manifests: {}", many.join(", ")),
    }
    let width = r
        .files
        .iter()
        .map(|f| f.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    if !r.files.is_empty() {
        println!(
            "{:<width$}  {:<7}  {:>14}  RESULT",
            "FILE", "DIGEST", "BYTES"
        );
    }
    for f in &r.files {
        let result = match &f.status {
            FileStatus::Ok => "ok".to_string(),
            FileStatus::Mismatch { expected, actual } => {
                format!("MISMATCH (manifest {expected}, file {actual})")
            }
            FileStatus::Missing => "MISSING".into(),
            FileStatus::NotInManifest => "NOT IN MANIFEST".into(),
            FileStatus::Unreadable { error } => format!("UNREADABLE: {error}"),
        };
        println!(
            "{:<width$}  {:<7}  {:>14}  {result}",
            f.name,
            f.algorithm.map(|a| a.name()).unwrap_or("-"),
            f.size.map(|s| s.to_string()).unwrap_or_else(|| "-".into())
        );
    }
    if let Some(c) = &r.certificate {
        println!(
            "Signature: {} ({}), signer {}; issuer {}; valid {} to {}; {}",
            if c.signature_valid {
                "valid"
            } else {
                "INVALID"
            },
            c.algorithm,
            c.subject,
            c.issuer,
            c.not_before,
            c.not_after,
            if c.trusted {
                "trusted".to_string()
            } else if c.self_signed {
                "self-signed, not trusted".into()
            } else {
                format!(
                    "not trusted: {}",
                    c.trust_problem.clone().unwrap_or_default()
                )
            }
        );
    } else {
        println!("Signature: none");
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
    for p in &r.problems {
        println!("FAILED: {p}");
    }
    println!(
        "{}",
        if r.ok() {
            "Verified."
        } else {
            "Verification failed."
        }
    );
}
