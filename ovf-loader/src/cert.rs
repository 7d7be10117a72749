//! The signing certificate (`.cert`): a signature over the manifest and the
//! PEM certificate chain that made it, as ovftool writes it:
//!
//! ```text
//! SHA256(package.mf)= 5a3f…            (hex signature)
//! -----BEGIN CERTIFICATE-----
//! …
//! ```
//!
//! OpenSSL does the cryptography (RSA and ECDSA with SHA1/256/512) and the
//! chain building against the system CA store, as every other tool on the
//! machine does; hand-written X.509 code would be the riskier choice.

use openssl::hash::MessageDigest;
use openssl::sign::Verifier;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509StoreContext, X509VerifyResult, X509};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct CertError {
    pub file: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CertificateReport {
    /// The manifest the signature covers.
    pub signed_file: String,
    pub algorithm: String,
    pub signature_valid: bool,
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
    pub expired_or_not_yet_valid: bool,
    pub self_signed: bool,
    /// Whether the chain ends in the system CA store or a `--trust` certificate.
    pub trusted: bool,
    /// Why it is not trusted, when it is not.
    pub trust_problem: Option<String>,
}

struct ParsedCert {
    algorithm: String,
    signed_file: String,
    signature: Vec<u8>,
    chain: Vec<X509>,
}

fn parse(file: &str, text: &[u8]) -> Result<ParsedCert, CertError> {
    let err = |message: String| CertError {
        file: file.into(),
        message,
    };
    let text = std::str::from_utf8(text).map_err(|_| err("not text".into()))?;
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| err("empty certificate file".into()))?;
    let open = first.find('(').ok_or_else(|| {
        err(format!(
            "expected 'ALGORITHM(manifest)= signature', found '{first}'"
        ))
    })?;
    let close = first
        .rfind(')')
        .filter(|&c| c > open)
        .ok_or_else(|| err("missing ')'".into()))?;
    let algorithm = first[..open].trim().to_ascii_uppercase();
    let signed_file = first[open + 1..close].to_string();
    let sig_hex = first[close + 1..]
        .trim_start()
        .strip_prefix('=')
        .ok_or_else(|| err("missing '='".into()))?
        .trim();
    let signature = hex::decode(sig_hex).map_err(|_| err("the signature is not hex".into()))?;
    let chain = X509::stack_from_pem(text.as_bytes())
        .map_err(|e| err(format!("cannot read the PEM certificates: {e}")))?;
    if chain.is_empty() {
        return Err(err("no certificate follows the signature".into()));
    }
    Ok(ParsedCert {
        algorithm,
        signed_file,
        signature,
        chain,
    })
}

fn digest_of(name: &str) -> Option<MessageDigest> {
    match name {
        "SHA1" => Some(MessageDigest::sha1()),
        "SHA256" => Some(MessageDigest::sha256()),
        "SHA384" => Some(MessageDigest::sha384()),
        "SHA512" => Some(MessageDigest::sha512()),
        _ => None,
    }
}

fn name_of(name: &openssl::x509::X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_default();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Check the signature over `manifest` and the chain behind it.
/// `trust_pem` adds trusted certificates beside the system store.
pub fn check(
    file: &str,
    cert_text: &[u8],
    manifest_name: &str,
    manifest: &[u8],
    trust_pem: Option<&[u8]>,
) -> Result<CertificateReport, CertError> {
    let err = |message: String| CertError {
        file: file.into(),
        message,
    };
    let parsed = parse(file, cert_text)?;
    if parsed.signed_file != manifest_name {
        return Err(err(format!(
            "the signature covers '{}', but the package's manifest is '{manifest_name}'",
            parsed.signed_file
        )));
    }
    let md = digest_of(&parsed.algorithm)
        .ok_or_else(|| err(format!("unknown signature digest '{}'", parsed.algorithm)))?;
    let leaf = &parsed.chain[0];
    let key = leaf
        .public_key()
        .map_err(|e| err(format!("cannot read the certificate's public key: {e}")))?;
    let signature_valid = Verifier::new(md, &key)
        .and_then(|mut v| {
            v.update(manifest)?;
            v.verify(&parsed.signature)
        })
        .unwrap_or(false);
    let self_signed = leaf.issued(leaf) == X509VerifyResult::OK;
    let now = openssl::asn1::Asn1Time::days_from_now(0).map_err(|e| err(e.to_string()))?;
    let expired_or_not_yet_valid = leaf.not_after() < now || leaf.not_before() > now;

    let mut store = X509StoreBuilder::new().map_err(|e| err(e.to_string()))?;
    store.set_default_paths().map_err(|e| err(e.to_string()))?;
    if let Some(pem) = trust_pem {
        for c in X509::stack_from_pem(pem)
            .map_err(|e| err(format!("cannot read the --trust certificates: {e}")))?
        {
            store.add_cert(c).map_err(|e| err(e.to_string()))?;
        }
    }
    let store = store.build();
    let mut intermediates = Stack::new().map_err(|e| err(e.to_string()))?;
    for c in parsed.chain.iter().skip(1) {
        intermediates
            .push(c.clone())
            .map_err(|e| err(e.to_string()))?;
    }
    let mut ctx = X509StoreContext::new().map_err(|e| err(e.to_string()))?;
    let (trusted, problem) = ctx
        .init(&store, leaf, &intermediates, |c| {
            let ok = c.verify_cert()?;
            Ok((
                ok,
                if ok {
                    None
                } else {
                    Some(c.error().error_string().to_string())
                },
            ))
        })
        .map_err(|e| err(e.to_string()))?;

    Ok(CertificateReport {
        signed_file: parsed.signed_file,
        algorithm: parsed.algorithm,
        signature_valid,
        subject: name_of(leaf.subject_name()),
        issuer: name_of(leaf.issuer_name()),
        not_before: leaf.not_before().to_string(),
        not_after: leaf.not_after().to_string(),
        expired_or_not_yet_valid,
        self_signed,
        trusted,
        trust_problem: problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::sign::Signer;
    use openssl::x509::X509NameBuilder;

    pub(crate) fn self_signed() -> (PKey<openssl::pkey::Private>, X509) {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "ovf-run test").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        (key, b.build())
    }

    fn cert_file(key: &PKey<openssl::pkey::Private>, cert: &X509, manifest: &[u8]) -> Vec<u8> {
        let mut s = Signer::new(MessageDigest::sha256(), key).unwrap();
        s.update(manifest).unwrap();
        let sig = s.sign_to_vec().unwrap();
        let mut out = format!("SHA256(p.mf)= {}\n", hex::encode(sig)).into_bytes();
        out.extend(cert.to_pem().unwrap());
        out
    }

    #[test]
    fn valid_self_signed_signature() {
        let (key, cert) = self_signed();
        let file = cert_file(&key, &cert, b"SHA256(a)= 00");
        let r = check("p.cert", &file, "p.mf", b"SHA256(a)= 00", None).unwrap();
        assert!(r.signature_valid && r.self_signed && !r.trusted, "{r:?}");
        assert!(r.subject.contains("ovf-run test"));
        let trusted = check(
            "p.cert",
            &file,
            "p.mf",
            b"SHA256(a)= 00",
            Some(&cert.to_pem().unwrap()),
        )
        .unwrap();
        assert!(trusted.trusted, "{trusted:?}");
    }

    #[test]
    fn tampered_manifest_fails_signature() {
        let (key, cert) = self_signed();
        let file = cert_file(&key, &cert, b"original");
        let r = check("p.cert", &file, "p.mf", b"tampered", None).unwrap();
        assert!(!r.signature_valid);
    }

    #[test]
    fn malformed_files_are_errors() {
        assert!(check("p.cert", b"", "p.mf", b"", None).is_err());
        assert!(check("p.cert", b"SHA256(p.mf)= zz\n", "p.mf", b"", None).is_err());
        assert!(check("p.cert", b"SHA256(p.mf)= 00\n", "p.mf", b"", None)
            .unwrap_err()
            .message
            .contains("certificate"));
        let (key, cert) = self_signed();
        let file = cert_file(&key, &cert, b"x");
        assert!(check("p.cert", &file, "other.mf", b"x", None)
            .unwrap_err()
            .message
            .contains("covers"));
    }
}
