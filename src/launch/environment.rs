//! The OVF environment of a launch, decided purely: the transport (`iso`
//! when the VirtualHardwareSection asks for it or the guest has properties
//! to read) and the `ovf-env.xml` document with the final property values
//! and the NICs' MACs. The host's locale and time zone are read by
//! [`host_platform`]; everything else is unit-tested here.

use crate::net::NicPlan;
use block_source::MemorySource;
use disk_image::iso_writer::{build_iso, IsoFile, IsoWriteError};
use ovf_loader::environment::{self, Adapter, EnvironmentError, Platform};
use ovf_loader::model::Envelope;
use ovf_loader::properties::Resolution;
use std::sync::Arc;

/// How the environment reaches the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// An ISO 9660 image holding `ovf-env.xml` in a CD-ROM drive.
    Iso,
}

/// The volume label of the environment's ISO image (VMware's is "OVF ENV").
pub const ISO_LABEL: &str = "OVF ENV";

/// The CD-ROM that carries the environment (transport `iso`): an ISO 9660
/// image (Joliet and Rock Ridge names, so Linux and cloud-init's OVF
/// datasource see `ovf-env.xml`) built in memory, never written anywhere.
pub fn cdroms(env: &EnvironmentPlan) -> Result<Vec<vmm::CdromConfig>, IsoWriteError> {
    let (Some(Transport::Iso), Some(xml)) = (env.transport, env.environment_xml.as_ref()) else {
        return Ok(Vec::new());
    };
    let image = build_iso(
        ISO_LABEL,
        &[IsoFile {
            name: "ovf-env.xml".into(),
            contents: xml.clone(),
        }],
    )?;
    Ok(vec![vmm::CdromConfig {
        source: Arc::new(MemorySource::new(image, true)),
        serial: "ovf-env".into(),
    }])
}

/// What the guest is told, and how.
#[derive(Debug, Clone, Default)]
pub struct EnvironmentPlan {
    /// `None`: the package asks for no environment and has no properties.
    pub transport: Option<Transport>,
    /// The `ovf-env.xml` to put on the transport (with `transport`).
    pub environment_xml: Option<Vec<u8>>,
    /// Every property's final value.
    pub properties: Resolution,
    /// The VirtualHardwareSection's `ovf:transport` lists `iso`.
    pub requested: bool,
}

/// Decide the environment of virtual system `system_id`.
pub fn plan_environment(
    env: &Envelope,
    system_id: &str,
    properties: Resolution,
    nics: &[NicPlan],
    platform: &Platform,
) -> Result<EnvironmentPlan, EnvironmentError> {
    let asks_iso = env
        .systems()
        .iter()
        .filter(|vs| vs.id == system_id)
        .flat_map(|vs| vs.hardware.iter())
        .flat_map(|h| h.transport.iter())
        .any(|t| t.eq_ignore_ascii_case("iso"));
    let transport =
        (asks_iso || sees_properties(env, system_id, &properties)).then_some(Transport::Iso);
    let environment_xml = match transport {
        Some(Transport::Iso) => {
            let adapters: Vec<Adapter> = nics
                .iter()
                .map(|n| Adapter {
                    mac: format_mac(&n.mac),
                    network: n.network.clone(),
                })
                .collect();
            Some(environment::document(
                env,
                system_id,
                &properties,
                platform,
                &adapters,
            )?)
        }
        None => None,
    };
    Ok(EnvironmentPlan {
        transport,
        environment_xml,
        properties,
        requested: asks_iso,
    })
}

/// Whether the system's environment would carry a property: its own, its
/// collections' or its siblings'.
fn sees_properties(env: &Envelope, system_id: &str, properties: &Resolution) -> bool {
    let owners = environment::visible_owners(env, system_id);
    properties
        .properties
        .iter()
        .any(|p| owners.contains(&p.owner))
}

/// `52:54:00:12:34:56`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// This host's locale (`LC_ALL`, `LC_MESSAGES`, `LANG`; `en_US.UTF-8` →
/// `en_US`; `C`/`POSIX`/unset → `en`) and UTC offset in minutes.
pub fn host_platform() -> Platform {
    let locale = ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.is_empty())
        .unwrap_or_default();
    Platform {
        version: env!("CARGO_PKG_VERSION").into(),
        locale: locale_name(&locale),
        timezone_minutes: utc_offset_minutes(),
    }
}

fn locale_name(posix: &str) -> String {
    let name = posix.split(['.', '@']).next().unwrap_or("");
    if name.is_empty() || name == "C" || name == "POSIX" {
        "en".into()
    } else {
        name.into()
    }
}

fn utc_offset_minutes() -> Option<i32> {
    // SAFETY: time(NULL) and localtime_r with a valid out pointer.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return None;
        }
        i32::try_from(tm.tm_gmtoff / 60).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::NetMode;
    use ovf_loader::model::parse_descriptor;
    use ovf_loader::properties::resolve;

    fn descriptor(transport: &str, props: &str) -> Envelope {
        let xml = format!(
            r#"<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References/>
  <VirtualSystem ovf:id="vm"><Info>x</Info>
    <ProductSection><Info>p</Info>{props}</ProductSection>
    <VirtualHardwareSection {transport}><Info>hw</Info></VirtualHardwareSection>
  </VirtualSystem>
</Envelope>"#
        );
        parse_descriptor(xml.as_bytes()).unwrap()
    }

    fn platform() -> Platform {
        Platform {
            version: "0".into(),
            locale: "en".into(),
            timezone_minutes: None,
        }
    }

    fn nic() -> NicPlan {
        NicPlan {
            network: Some("lan".into()),
            mac: [0x52, 0x54, 0, 0xab, 0xcd, 0xef],
            mode: NetMode::User,
            by_default: true,
        }
    }

    #[test]
    fn iso_when_asked_or_when_there_are_properties() {
        let prop = r#"<Property ovf:key="hostname" ovf:userConfigurable="true" ovf:value="h"/>"#;
        for (transport, props, expect) in [
            ("", "", None),
            (r#"ovf:transport="iso""#, "", Some(Transport::Iso)),
            (
                r#"ovf:transport="com.vmware.guestInfo iso""#,
                "",
                Some(Transport::Iso),
            ),
            (r#"ovf:transport="com.vmware.guestInfo""#, "", None),
            ("", prop, Some(Transport::Iso)),
        ] {
            let env = descriptor(transport, props);
            let r = resolve(&env, None, &[]).unwrap();
            let p = plan_environment(&env, "vm", r, &[nic()], &platform()).unwrap();
            assert_eq!(p.transport, expect, "{transport} {props}");
            assert_eq!(p.requested, transport.contains("iso"));
            assert_eq!(p.environment_xml.is_some(), expect.is_some());
        }
    }

    #[test]
    fn the_document_carries_final_values_and_the_planned_macs() {
        let prop = r#"<Property ovf:key="hostname" ovf:userConfigurable="true" ovf:value="h"/>"#;
        let env = descriptor("", prop);
        let r = resolve(&env, None, &["hostname=sandbox-42".parse().unwrap()]).unwrap();
        let p = plan_environment(&env, "vm", r, &[nic()], &platform()).unwrap();
        let xml = String::from_utf8(p.environment_xml.unwrap()).unwrap();
        assert!(
            xml.contains(r#"oe:key="hostname" oe:value="sandbox-42""#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"ve:mac="52:54:00:ab:cd:ef" ve:network="lan""#),
            "{xml}"
        );
        assert_eq!(p.properties.value_of("hostname"), Some("sandbox-42"));
    }

    #[test]
    fn locales_are_named_like_vmware_does() {
        assert_eq!(locale_name("en_US.UTF-8"), "en_US");
        assert_eq!(locale_name("de_DE@euro"), "de_DE");
        assert_eq!(locale_name("C.UTF-8"), "en");
        assert_eq!(locale_name(""), "en");
        assert_eq!(host_platform().version, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn the_environment_rides_on_one_cdrom_and_no_environment_means_none() {
        let prop = r#"<Property ovf:key="hostname" ovf:userConfigurable="true" ovf:value="h"/>"#;
        let env = descriptor("", prop);
        let r = resolve(&env, None, &["hostname=sandbox-42".parse().unwrap()]).unwrap();
        let p = plan_environment(&env, "vm", r, &[nic()], &platform()).unwrap();
        let xml = p.environment_xml.clone().unwrap();
        let cds = cdroms(&p).unwrap();
        assert_eq!(cds.len(), 1);
        let cap = cds[0].source.capacity();
        assert_eq!(cap % 2048, 0);
        let mut image = vec![0u8; cap as usize];
        cds[0].source.read_at(&mut image, 0).unwrap();
        assert!(
            image.windows(xml.len()).any(|w| w == xml.as_slice()),
            "the document is in the image whole"
        );
        assert!(
            cds[0].source.write_at(&[0], 0).is_err(),
            "the CD-ROM is read-only"
        );

        let env = descriptor("", "");
        let r = resolve(&env, None, &[]).unwrap();
        let p = plan_environment(&env, "vm", r, &[nic()], &platform()).unwrap();
        assert!(cdroms(&p).unwrap().is_empty());
    }
}
