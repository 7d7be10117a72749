//! Unit tests of the environment document: structure, collections and
//! hostile values read back with quick-xml (attribute values normalised as
//! an XML parser must). Schema validation with xmllint:
//! tests/environment_schema.rs.

use super::*;
use crate::model::parse_descriptor;
use crate::properties::{resolve, Assignment, ValueSource};
use quick_xml::events::Event;
use quick_xml::XmlVersion;

pub(crate) const COLLECTION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
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
        <Property ovf:key="hostname" ovf:type="string" ovf:userConfigurable="true" ovf:value="www"/>
      </ProductSection>
    </VirtualSystem>
    <VirtualSystem ovf:id="db">
      <Info>db</Info>
      <ProductSection ovf:class="db"><Info>d</Info>
        <Property ovf:key="hostname" ovf:type="string" ovf:userConfigurable="true" ovf:value="db0"/>
      </ProductSection>
    </VirtualSystem>
  </VirtualSystemCollection>
</Envelope>
"#;

pub(crate) fn platform() -> Platform {
    Platform {
        version: "0.1.0".into(),
        locale: "en_US".into(),
        timezone_minutes: Some(-300),
    }
}

/// (element path, attributes) of every element, attribute values as an
/// XML parser reports them.
pub(crate) fn read_back(xml: &[u8]) -> Vec<(String, Vec<(String, String)>)> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut stack: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut buf = Vec::new();
    loop {
        let ev = reader.read_event_into(&mut buf).unwrap();
        let (start, empty) = match &ev {
            Event::Start(s) => (Some(s.clone()), false),
            Event::Empty(s) => (Some(s.clone()), true),
            Event::End(_) => {
                stack.pop();
                (None, false)
            }
            Event::Text(t) => {
                let text = t.to_string();
                if !text.trim().is_empty() {
                    out.push((
                        format!("{}/#text", stack.join("/")),
                        vec![("".into(), text)],
                    ));
                }
                (None, false)
            }
            Event::Eof => break,
            _ => (None, false),
        };
        if let Some(s) = start {
            let name = s.name().as_ref().to_string();
            stack.push(name);
            let attrs = s
                .attributes()
                .map(|a| {
                    let a = a.unwrap();
                    (
                        a.key.as_ref().to_string(),
                        a.normalized_value(XmlVersion::Explicit1_0)
                            .unwrap()
                            .into_owned(),
                    )
                })
                .collect();
            out.push((stack.join("/"), attrs));
            if empty {
                stack.pop();
            }
        }
        buf.clear();
    }
    out
}

fn attr_of<'a>(el: &'a [(String, String)], name: &str) -> Option<&'a str> {
    el.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn properties_at(doc: &[(String, Vec<(String, String)>)], path: &str) -> Vec<(String, String)> {
    doc.iter()
        .filter(|(p, _)| p == path)
        .map(|(_, a)| {
            (
                attr_of(a, "oe:key").unwrap().to_string(),
                attr_of(a, "oe:value").unwrap().to_string(),
            )
        })
        .collect()
}

fn one_system(values: &[(&str, &str)]) -> (Envelope, Resolution) {
    let env = parse_descriptor(crate::properties::tests::DESCRIPTOR.as_bytes()).unwrap();
    let mut given: Vec<Assignment> =
        vec!["hostname=h".parse().unwrap(), "port=22".parse().unwrap()];
    given.extend(values.iter().map(|(k, v)| Assignment {
        key: k.to_string(),
        value: v.to_string(),
        origin: "test".into(),
    }));
    let r = resolve(&env, None, &given).unwrap();
    (env, r)
}

#[test]
fn a_system_gets_platform_properties_and_adapters() {
    let (env, r) = one_system(&[]);
    let adapters = [
        Adapter {
            mac: "52:54:00:12:34:56".into(),
            network: Some("VM Network".into()),
        },
        Adapter {
            mac: "52:54:00:12:34:57".into(),
            network: None,
        },
    ];
    let xml = document(&env, "vm", &r, &platform(), &adapters).unwrap();
    let doc = read_back(&xml);
    assert_eq!(doc[0].0, "Environment");
    assert_eq!(attr_of(&doc[0].1, "oe:id"), Some("vm"));
    assert_eq!(attr_of(&doc[0].1, "xmlns"), Some(ENV_NS));
    let text = |p: &str| {
        doc.iter()
            .find(|(path, _)| path == &format!("Environment/PlatformSection/{p}/#text"))
            .map(|(_, a)| a[0].1.clone())
    };
    assert_eq!(text("Kind").as_deref(), Some("ovf-run"));
    assert_eq!(text("Version").as_deref(), Some("0.1.0"));
    assert_eq!(text("Locale").as_deref(), Some("en_US"));
    assert_eq!(text("Timezone").as_deref(), Some("-300"));
    let props = properties_at(&doc, "Environment/PropertySection/Property");
    let expected: Vec<(String, String)> = r
        .properties
        .iter()
        .map(|p| (p.full_key.clone(), p.value.clone()))
        .collect();
    assert_eq!(props, expected, "every property, in document order");
    assert!(props.contains(&("org.example.hostname.1".into(), "app".into())));
    assert!(props.contains(&("port".into(), "22".into())));
    let nics: Vec<_> = doc
        .iter()
        .filter(|(p, _)| p == "Environment/ve:EthernetAdapterSection/ve:Adapter")
        .collect();
    assert_eq!(nics.len(), 2);
    assert_eq!(attr_of(&nics[0].1, "ve:mac"), Some("52:54:00:12:34:56"));
    assert_eq!(attr_of(&nics[0].1, "ve:network"), Some("VM Network"));
    assert_eq!(attr_of(&nics[1].1, "ve:network"), None);
    assert!(matches!(
        document(&env, "other", &r, &platform(), &[]),
        Err(EnvironmentError::NoSystem(_))
    ));
}

#[test]
fn a_collection_member_sees_its_collection_and_its_siblings_as_entities() {
    let env = parse_descriptor(COLLECTION.as_bytes()).unwrap();
    let r = resolve(&env, None, &["db.hostname=db1".parse().unwrap()]).unwrap();
    let xml = document(&env, "web", &r, &platform(), &[]).unwrap();
    let doc = read_back(&xml);
    assert_eq!(attr_of(&doc[0].1, "oe:id"), Some("web"));
    assert_eq!(
        properties_at(&doc, "Environment/PropertySection/Property"),
        vec![
            ("domain".to_string(), "example.org".to_string()),
            ("web.hostname.1".to_string(), "www".to_string()),
        ]
    );
    let entities: Vec<_> = doc
        .iter()
        .filter(|(p, _)| p == "Environment/Entity")
        .collect();
    assert_eq!(entities.len(), 1);
    assert_eq!(attr_of(&entities[0].1, "oe:id"), Some("db"));
    assert_eq!(
        properties_at(&doc, "Environment/Entity/PropertySection/Property"),
        vec![("db.hostname".to_string(), "db1".to_string())]
    );
    assert!(!doc
        .iter()
        .any(|(p, _)| p.contains("EthernetAdapterSection")));
    assert!(
        matches!(
            document(&env, "app", &r, &platform(), &[]),
            Err(EnvironmentError::NoSystem(_))
        ),
        "a collection has no environment of its own"
    );
}

pub(crate) const HOSTILE: [&str; 9] = [
    "<tag attr=\"x\">&amp;</tag>",
    "'single' \"double\" & < > ]]> <!-- --> <![CDATA[x]]>",
    "line one\nline two\r\nthree\rfour\ttab",
    "  leading and trailing spaces  ",
    "",
    "unicode: é 漢字 🙂 \u{fffd} \u{85} \u{2028}",
    "&#10; &lt; literally",
    "${hostname}",
    "#!/bin/sh\necho \"hi $USER\" > /tmp/x\n",
];

#[test]
fn hostile_values_round_trip() {
    for value in HOSTILE {
        let (env, r) = one_system(&[("instance-id", value)]);
        let xml = document(&env, "vm", &r, &platform(), &[]).unwrap();
        let doc = read_back(&xml);
        let props = properties_at(&doc, "Environment/PropertySection/Property");
        let got = props.iter().find(|(k, _)| k == "instance-id").unwrap();
        assert_eq!(got.1, value, "{}", String::from_utf8_lossy(&xml));
    }
}

#[test]
fn a_mebibyte_value_round_trips() {
    let big: String = "ab<&\n".repeat((1 << 20) / 5);
    let (env, r) = one_system(&[("instance-id", &big)]);
    let xml = document(&env, "vm", &r, &platform(), &[]).unwrap();
    let doc = read_back(&xml);
    let props = properties_at(&doc, "Environment/PropertySection/Property");
    assert!(props.iter().any(|(k, v)| k == "instance-id" && *v == big));
}

#[test]
fn control_characters_are_refused_even_from_the_package() {
    let (env, mut r) = one_system(&[]);
    let p = r.properties.iter_mut().find(|p| p.key == "fixed").unwrap();
    assert_eq!(p.source, ValueSource::Default);
    p.value = "bell\u{7}".into();
    let e = document(&env, "vm", &r, &platform(), &[]).unwrap_err();
    assert!(
        matches!(e, EnvironmentError::NotXmlChar { ref key, position: 5, code: 7 } if key == "fixed"),
        "{e}"
    );
}
