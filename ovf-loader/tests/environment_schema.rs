//! The generated OVF environment validates against DMTF's schema (DSP8027,
//! from the shared corpus) with `xmllint --schema`, and xmllint reads the
//! hostile values back unchanged. Needs xmllint (Debian: libxml2-utils,
//! installed by scripts/setup-deps); without it the tests fail saying so.

#[allow(dead_code)] // only corpus_dir is used here
mod corpus_common;

use ovf_loader::environment::{document, Adapter, Platform};
use ovf_loader::model::parse_descriptor;
use ovf_loader::properties::{resolve, Assignment};
use std::path::{Path, PathBuf};
use std::process::Command;

const DESCRIPTOR: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References/>
  <VirtualSystemCollection ovf:id="app">
    <Info>two tiers</Info>
    <ProductSection><Info>app</Info>
      <Property ovf:key="domain" ovf:type="string" ovf:userConfigurable="true" ovf:value="example.org"/>
    </ProductSection>
    <VirtualSystem ovf:id="web">
      <Info>web</Info>
      <ProductSection ovf:class="web" ovf:instance="1"><Info>w</Info>
        <Property ovf:key="user-data" ovf:type="string" ovf:userConfigurable="true"/>
        <Property ovf:key="port" ovf:type="uint16" ovf:userConfigurable="true" ovf:value="80"/>
        <Property ovf:key="debug" ovf:type="boolean" ovf:userConfigurable="true" ovf:value="false"/>
      </ProductSection>
    </VirtualSystem>
    <VirtualSystem ovf:id="db">
      <Info>db</Info>
      <ProductSection><Info>d</Info>
        <Property ovf:key="hostname" ovf:type="string" ovf:userConfigurable="true" ovf:value="db0"/>
      </ProductSection>
    </VirtualSystem>
  </VirtualSystemCollection>
</Envelope>
"#;

const HOSTILE: &str =
    "<a b=\"c\">&amp; 'q' ]]> <!-- x -->\nline two\r\n\ttabbed  é 漢字 🙂 &#10; ${domain}";

/// The schema folder and a catalog mapping DSP8027's import of
/// common.xsd (an http URL) to the corpus copy, so xmllint runs offline.
fn schema(dir: &Path) -> (PathBuf, PathBuf) {
    let schema_dir = corpus_common::corpus_dir().join("schema/ovf-1.0");
    let xsd = schema_dir.join("DSP8027.xsd");
    let common = schema_dir.join("common.xsd");
    assert!(
        xsd.is_file() && common.is_file(),
        "missing {} or {}",
        xsd.display(),
        common.display()
    );
    let catalog = dir.join("catalog.xml");
    let uri = format!("file://{}", common.canonicalize().unwrap().display());
    std::fs::write(
        &catalog,
        format!(
            r#"<?xml version="1.0"?>
<catalog xmlns="urn:oasis:names:tc:entity:xmlns:xml:catalog">
  <system systemId="http://schemas.dmtf.org/wbem/wscim/1/common.xsd" uri="{uri}"/>
  <uri name="http://schemas.dmtf.org/wbem/wscim/1/common.xsd" uri="{uri}"/>
</catalog>
"#
        ),
    )
    .unwrap();
    (xsd, catalog)
}

fn xmllint(catalog: &Path, args: &[&std::ffi::OsStr]) -> std::process::Output {
    match Command::new("xmllint")
        .env("XML_CATALOG_FILES", catalog)
        .arg("--nonet")
        .args(args)
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run xmllint ({e}): install it with 'apt-get install libxml2-utils' (scripts/setup-deps does)"
        ),
    }
}

fn validates(xsd: &Path, catalog: &Path, file: &Path) -> Result<(), String> {
    let out = xmllint(
        catalog,
        &[
            "--noout".as_ref(),
            "--schema".as_ref(),
            xsd.as_os_str(),
            file.as_os_str(),
        ],
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn generate(system: &str) -> Vec<u8> {
    let env = parse_descriptor(DESCRIPTOR.as_bytes()).unwrap();
    let given = [Assignment {
        key: "user-data".into(),
        value: HOSTILE.into(),
        origin: "test".into(),
    }];
    let r = resolve(&env, None, &given).unwrap();
    r.require_complete().unwrap();
    let platform = Platform {
        version: env!("CARGO_PKG_VERSION").into(),
        locale: "en_US".into(),
        timezone_minutes: Some(60),
    };
    let adapters = [Adapter {
        mac: "52:54:00:ab:cd:ef".into(),
        network: Some("VM Network <&>".into()),
    }];
    document(&env, system, &r, &platform, &adapters).unwrap()
}

#[test]
fn the_environment_validates_against_dsp8027() {
    let dir = tempfile::tempdir().unwrap();
    let (xsd, catalog) = schema(dir.path());
    for system in ["web", "db"] {
        let file = dir.path().join(format!("{system}.xml"));
        std::fs::write(&file, generate(system)).unwrap();
        if let Err(e) = validates(&xsd, &catalog, &file) {
            panic!(
                "{system}: {e}\n{}",
                String::from_utf8_lossy(&std::fs::read(&file).unwrap())
            );
        }
    }
    // The check is not vacuous: a Property without its value is refused.
    let bad = dir.path().join("bad.xml");
    std::fs::write(
        &bad,
        r#"<Environment xmlns="http://schemas.dmtf.org/ovf/environment/1" xmlns:oe="http://schemas.dmtf.org/ovf/environment/1" oe:id="x"><PropertySection><Property oe:key="k"/></PropertySection></Environment>"#,
    )
    .unwrap();
    assert!(validates(&xsd, &catalog, &bad).is_err());
}

#[test]
fn xmllint_reads_hostile_values_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (_, catalog) = schema(dir.path());
    let file = dir.path().join("web.xml");
    std::fs::write(&file, generate("web")).unwrap();
    let xpath = "string(//*[local-name()='Property'][@*[local-name()='key']='web.user-data.1']/@*[local-name()='value'])";
    let out = xmllint(
        &catalog,
        &["--xpath".as_ref(), xpath.as_ref(), file.as_os_str()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // xmllint prints the string as it is (2.9 adds no newline; later add one).
    let got = String::from_utf8(out.stdout).unwrap();
    let got = if got.len() == HOSTILE.len() + 1 {
        &got[..HOSTILE.len()]
    } else {
        &got[..]
    };
    assert_eq!(got, HOSTILE);
}

#[test]
#[ignore = "prints a sample document"]
fn print_sample() {
    println!("{}", String::from_utf8(generate("web")).unwrap());
}
