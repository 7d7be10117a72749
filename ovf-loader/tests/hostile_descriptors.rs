//! Descriptors written to hurt: each is refused with a clear, positioned
//! message, quickly and without large allocations.

use ovf_loader::model::parse_descriptor;

fn envelope(body: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
{body}
<VirtualSystem ovf:id="v"><Info>x</Info></VirtualSystem>
</Envelope>"#
    )
}

fn refused(doc: &str, expect: &str) {
    let err = parse_descriptor(doc.as_bytes()).expect_err("must be refused");
    assert!(
        err.message.contains(expect),
        "expected '{expect}' in: {err}"
    );
    assert!(err.line >= 1);
}

#[test]
fn absurd_capacities_and_sizes() {
    refused(
        &envelope(
            r#"<References><File ovf:id="f" ovf:href="d.vmdk"/></References><DiskSection><Info/><Disk ovf:diskId="d" ovf:fileRef="f" ovf:capacity="9223372036854775808"/></DiskSection>"#,
        ),
        "beyond",
    );
    refused(
        &envelope(
            r#"<DiskSection><Info/><Disk ovf:diskId="d" ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^70"/></DiskSection>"#,
        ),
        "too large",
    );
    refused(
        &envelope(
            r#"<DiskSection><Info/><Disk ovf:diskId="d" ovf:capacity="18446744073709551616"/></DiskSection>"#,
        ),
        "64 bits",
    );
    refused(
        &envelope(r#"<References><File ovf:id="f" ovf:href="d" ovf:chunkSize="-1"/></References>"#),
        "negative",
    );
    refused(
        &envelope(r#"<References><File ovf:id="f" ovf:href="d" ovf:size="-5"/></References>"#),
        "negative",
    );
    refused(
        &envelope(r#"<References><File ovf:id="f" ovf:href="d" ovf:chunkSize="0"/></References>"#),
        "chunkSize",
    );
}

#[test]
fn entity_expansion_and_external_entities() {
    let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1">&lol2;</Envelope>"#;
    refused(laughs, "DTD");
    let external = r#"<?xml version="1.0"?>
<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1">&x;</Envelope>"#;
    refused(external, "DTD");
    refused(&envelope("<Foo>&undefined;</Foo>"), "unknown entity");
}

#[test]
fn structure_bombs() {
    let deep = envelope(&format!(
        "{}{}",
        "<a>".repeat(10_000),
        "</a>".repeat(10_000)
    ));
    refused(&deep, "deeper");
    refused(
        "<Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\">",
        "never closed",
    );
    refused("", "no root element");
    let huge = vec![b' '; 40 << 20];
    assert!(parse_descriptor(&huge).is_err());
}

#[test]
fn hardware_out_of_range_is_refused_when_mapped() {
    let doc = envelope("").replace(
        r#"<VirtualSystem ovf:id="v"><Info>x</Info></VirtualSystem>"#,
        r#"<VirtualSystem ovf:id="v"><Info>x</Info><VirtualHardwareSection><Info/>
        <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>100000</rasd:VirtualQuantity></Item>
        </VirtualHardwareSection></VirtualSystem>"#,
    );
    let env = parse_descriptor(doc.as_bytes()).unwrap();
    let err = ovf_loader::machine_spec(&env, None, None).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
}
