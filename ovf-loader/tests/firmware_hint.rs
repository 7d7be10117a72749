//! The firmware a package names (issue 12): VMware's
//! `<vmw:Config vmw:key="firmware" vmw:value="efi"/>` becomes the machine
//! description's layout hint, and is no longer listed as ignored.

use ovf_loader::machine::machine_spec;
use ovf_loader::model::{parse_descriptor, FirmwareHint};

fn descriptor(config: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
<VirtualSystem ovf:id="v"><Info>x</Info>
<VirtualHardwareSection><Info>hw</Info>
<System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemType>vmx-19</vssd:VirtualSystemType></System>
<Item><rasd:ElementName>cpu</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
{config}
<vmw:Config ovf:required="false" vmw:key="cpuHotAddEnabled" vmw:value="false"/>
</VirtualHardwareSection>
</VirtualSystem>
</Envelope>"#
    )
}

fn hint(config: &str) -> (Option<FirmwareHint>, usize) {
    let env = parse_descriptor(descriptor(config).as_bytes()).expect("parses");
    let spec = machine_spec(&env, None, None).expect("maps");
    (spec.firmware, env.ignored.len())
}

#[test]
fn efi_bios_and_absent() {
    let efi = r#"<vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>"#;
    let bios = r#"<vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="bios"/>"#;
    assert_eq!(
        hint(efi),
        (Some(FirmwareHint::Efi), 1),
        "only cpuHotAddEnabled is ignored"
    );
    assert_eq!(hint(bios), (Some(FirmwareHint::Bios), 1));
    assert_eq!(hint(""), (None, 1));
    // Another vendor's Config element of the same name is not VMware's.
    let other = r#"<x:Config xmlns:x="urn:example" x:key="firmware" x:value="efi"/>"#;
    assert_eq!(hint(other).0, None);
}
