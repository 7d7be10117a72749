//! Why an element is ignored is said truthfully (issue 16): only an element
//! that carries `ovf:required="false"` is called an optional extension.

use ovf_loader::model::parse_descriptor;

fn reasons(extra: &str) -> Vec<(String, String)> {
    let doc = format!(
        r#"<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:x="urn:example">
{extra}
<VirtualSystem ovf:id="v"><Info>x</Info></VirtualSystem>
</Envelope>"#
    );
    let env = parse_descriptor(doc.as_bytes()).expect("parses");
    env.ignored
        .iter()
        .map(|i| (i.element.clone(), i.reason.clone()))
        .collect()
}

#[test]
fn only_required_false_is_an_optional_extension() {
    let r = reasons(r#"<x:VendorSection ovf:required="false"><Info>v</Info></x:VendorSection>"#);
    assert!(
        r.iter().any(|(_, why)| why.contains("optional extension")),
        "{r:?}"
    );
    let r = reasons(r#"<Bogus>no ovf:required here</Bogus>"#);
    assert!(!r.is_empty(), "Bogus is not reported as ignored");
    assert!(
        r.iter().all(|(_, why)| !why.contains("optional extension")),
        "{r:?}"
    );
}
