//! Unit tests: every type and qualifier check, key matching, required
//! properties, `${key}` capacities and the prop-file format.

use super::prop_file::{parse_prop_file, PropFileError};
use super::*;
use crate::model::parse_descriptor;

pub(crate) const DESCRIPTOR: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References/>
  <DiskSection><Info>disks</Info>
    <Disk ovf:diskId="data" ovf:capacity="${data_gib}" ovf:capacityAllocationUnits="byte * 2^30"/>
  </DiskSection>
  <DeploymentOptionSection><Info>sizes</Info>
    <Configuration ovf:id="small" ovf:default="true"><Label>S</Label><Description>s</Description></Configuration>
    <Configuration ovf:id="large"><Label>L</Label><Description>l</Description></Configuration>
  </DeploymentOptionSection>
  <VirtualSystem ovf:id="vm">
    <Info>one</Info>
    <ProductSection>
      <Info>cloud-init</Info>
      <Property ovf:key="instance-id" ovf:type="string" ovf:userConfigurable="true" ovf:value="id-ovf"/>
      <Property ovf:key="hostname" ovf:type="string" ovf:userConfigurable="true" ovf:qualifiers="MinLen(1),MaxLen(63)"><Label>Host name</Label></Property>
      <Property ovf:key="port" ovf:type="uint16" ovf:userConfigurable="true"/>
      <Property ovf:key="data_gib" ovf:type="uint16" ovf:userConfigurable="true" ovf:value="2">
        <Value ovf:configuration="large" ovf:value="20"/>
      </Property>
      <Property ovf:key="fixed" ovf:type="string" ovf:value="locked"/>
    </ProductSection>
    <ProductSection ovf:class="org.example" ovf:instance="1">
      <Info>app</Info>
      <Property ovf:key="mode" ovf:type="string" ovf:userConfigurable="true" ovf:value="a" ovf:qualifiers="ValueMap{&quot;a&quot;, &quot;b&quot;}"/>
      <Property ovf:key="hostname" ovf:type="string" ovf:userConfigurable="true" ovf:value="app"/>
    </ProductSection>
    <ProductSection ovf:class="org.other">
      <Info>other</Info>
      <Property ovf:key="mode" ovf:type="string" ovf:userConfigurable="true" ovf:value="on"/>
    </ProductSection>
  </VirtualSystem>
</Envelope>
"#;

fn env() -> Envelope {
    parse_descriptor(DESCRIPTOR.as_bytes()).unwrap()
}

fn set(pairs: &[(&str, &str)]) -> Vec<Assignment> {
    pairs
        .iter()
        .map(|(k, v)| Assignment {
            key: k.to_string(),
            value: v.to_string(),
            origin: "--prop".into(),
        })
        .collect()
}

fn check(ty: &str, quals: &str, value: &str) -> Result<String, ValueProblem> {
    check_value(&ValueType::parse(ty), &parse_qualifiers(quals), value)
}

#[test]
fn types_are_checked() {
    assert_eq!(check("string", "", "anything <&>").unwrap(), "anything <&>");
    assert_eq!(check("boolean", "", "TRUE").unwrap(), "true");
    assert_eq!(check("Boolean", "", "false").unwrap(), "false");
    assert_eq!(check("boolean", "", "yes"), Err(ValueProblem::NotBoolean));
    for (ty, ok, bad) in [
        ("uint8", "255", "256"),
        ("uint16", "65535", "65536"),
        ("uint32", "4294967295", "4294967296"),
        ("uint64", "18446744073709551615", "18446744073709551616"),
        ("sint8", "-128", "128"),
        ("sint16", "-32768", "32768"),
        ("sint32", "2147483647", "-2147483649"),
        ("sint64", "-9223372036854775808", "9223372036854775808"),
        ("int", "-5", "2147483648"),
    ] {
        assert_eq!(check(ty, "", ok).unwrap(), ok, "{ty}");
        assert!(
            matches!(check(ty, "", bad), Err(ValueProblem::OutOfRange { .. })),
            "{ty} {bad}"
        );
        assert!(
            matches!(check(ty, "", "x1"), Err(ValueProblem::NotInteger { .. })),
            "{ty}"
        );
        assert!(
            matches!(check(ty, "", ""), Err(ValueProblem::NotInteger { .. })),
            "{ty}"
        );
    }
    assert!(matches!(
        check("uint8", "", "-1"),
        Err(ValueProblem::OutOfRange { .. })
    ));
    assert!(matches!(
        check("uint8", "", "1.0"),
        Err(ValueProblem::NotInteger { .. })
    ));
    assert_eq!(check("real32", "", "1.5").unwrap(), "1.5");
    assert_eq!(check("real64", "", "-2e10").unwrap(), "-2e10");
    assert!(matches!(
        check("real64", "", "one"),
        Err(ValueProblem::NotReal { .. })
    ));
    assert!(matches!(
        check("real32", "", "inf"),
        Err(ValueProblem::NotReal { .. })
    ));
    assert_eq!(
        check("ip-address-of-doom", "", "x").unwrap(),
        "x",
        "unknown types are not checked"
    );
}

#[test]
fn qualifiers_are_parsed_and_checked() {
    assert_eq!(
        parse_qualifiers("MinLen(1),MaxLen(253) Ip('Network 1') ValueMap{\"a, b\", \"c\"}"),
        vec![
            Qualifier::MinLen(1),
            Qualifier::MaxLen(253),
            Qualifier::ValueMap(vec!["a, b".into(), "c".into()]),
        ]
    );
    assert_eq!(
        parse_qualifiers("MinValue(1) MaxValue(10)"),
        vec![
            Qualifier::MinValue("1".into()),
            Qualifier::MaxValue("10".into())
        ]
    );
    assert_eq!(
        parse_qualifiers("ValueMap{1, 2, 3, 5}"),
        vec![Qualifier::ValueMap(
            ["1", "2", "3", "5"].map(String::from).to_vec()
        )]
    );
    assert!(parse_qualifiers("MinLen(x) MaxLen(").is_empty());

    assert!(check("string", "MinLen(2)", "ab").is_ok());
    assert_eq!(
        check("string", "MinLen(2)", "a"),
        Err(ValueProblem::TooShort { min: 2, len: 1 })
    );
    assert!(
        check("string", "MaxLen(3)", "äöü").is_ok(),
        "characters, not bytes"
    );
    assert_eq!(
        check("string", "MaxLen(3)", "abcd"),
        Err(ValueProblem::TooLong { max: 3, len: 4 })
    );
    let vm = "ValueMap{\"a\", \"b\"}";
    assert!(check("string", vm, "b").is_ok());
    let e = check("string", vm, "c").unwrap_err();
    assert!(e.to_string().contains("one of a, b"), "{e}");
    assert!(check("int", "ValueMap{1, 2, 3, 5}", "5").is_ok());
    assert!(
        check("int", "ValueMap{1, 2, 3, 5}", "+5").is_ok(),
        "numeric types compare numbers"
    );
    assert!(check("int", "ValueMap{1, 2, 3, 5}", "4").is_err());
    assert!(check("uint8", "MinValue(10) MaxValue(20)", "10").is_ok());
    assert_eq!(
        check("uint8", "MinValue(10)", "9"),
        Err(ValueProblem::BelowMin { min: "10".into() })
    );
    assert_eq!(
        check("uint8", "MaxValue(20)", "21"),
        Err(ValueProblem::AboveMax { max: "20".into() })
    );
    assert!(check("real64", "MinValue(0.5)", "0.25").is_err());
    assert!(
        check("string", "MinValue(5)", "1").is_ok(),
        "Min/MaxValue apply to numbers"
    );
}

#[test]
fn control_characters_xml_cannot_carry_are_refused() {
    assert!(check("string", "", "tab\tlf\ncr\r").is_ok());
    for c in ['\0', '\u{1}', '\u{1b}', '\u{7}', '\u{fffe}', '\u{ffff}'] {
        let e = check("string", "", &format!("ab{c}")).unwrap_err();
        assert_eq!(
            e,
            ValueProblem::NotXmlChar {
                position: 3,
                code: c as u32
            }
        );
    }
}

#[test]
fn final_values_follow_user_configuration_default_empty() {
    let r = resolve(
        &env(),
        Some("large"),
        &set(&[
            ("org.example.hostname.1", "h2"),
            ("port", "22"),
            ("instance-id", "i-1"),
        ]),
    )
    .unwrap();
    let v = |k: &str| {
        r.properties
            .iter()
            .find(|p| p.full_key == k)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (v("instance-id").value.as_str(), v("instance-id").source),
        ("i-1", ValueSource::User)
    );
    assert_eq!(v("data_gib").value, "20");
    assert_eq!(v("data_gib").source, ValueSource::Configuration);
    assert_eq!(
        (v("fixed").value.as_str(), v("fixed").source),
        ("locked", ValueSource::Default)
    );
    assert_eq!(v("org.example.hostname.1").value, "h2");
    assert_eq!(v("org.example.mode.1").value, "a");
    // hostname (MinLen(1), no value) is still missing.
    assert_eq!(r.missing.len(), 1);
    assert_eq!(r.missing[0].full_key, "hostname");
    let e = r.require_complete().unwrap_err().to_string();
    assert_eq!(
        e,
        "this property has no value yet: pass --prop hostname=VALUE (string, MinLen(1),MaxLen(63): Host name)"
    );
}

#[test]
fn keys_are_plain_or_composed_and_ambiguity_is_an_error() {
    // `hostname` is both a full key and org.example.hostname.1's key: the
    // exact full key wins.
    let r = resolve(&env(), None, &set(&[("hostname", "x")])).unwrap();
    assert_eq!(r.value_of("hostname"), Some("x"));
    assert_eq!(r.value_of("org.example.hostname.1"), Some("app"));
    // `mode` is org.example.mode.1 and org.other.mode.
    let e = resolve(&env(), None, &set(&[("mode", "b")])).unwrap_err();
    assert!(
        e.to_string()
            .contains("use one of: org.example.mode.1, org.other.mode"),
        "{e}"
    );
    let e = resolve(&env(), None, &set(&[("org.example.mode.1", "z")])).unwrap_err();
    assert!(
        matches!(e, PropertyError::BadValue { ref key, .. } if key == "org.example.mode.1"),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("--prop: bad value for property 'org.example.mode.1'"),
        "{e}"
    );
    let e = resolve(&env(), None, &set(&[("nope", "1")])).unwrap_err();
    assert!(matches!(e, PropertyError::UnknownKey { .. }));
    assert!(
        e.to_string()
            .contains("it has: data_gib, fixed, hostname, instance-id"),
        "{e}"
    );
    let e = resolve(&env(), None, &set(&[("fixed", "1")])).unwrap_err();
    assert!(
        matches!(e, PropertyError::NotConfigurable { ref key, .. } if key == "fixed"),
        "{e}"
    );
    assert!(
        e.to_string().contains("'fixed' is not user-configurable"),
        "{e}"
    );
    let e = resolve(&env(), None, &set(&[("port", "70000")])).unwrap_err();
    assert!(
        e.to_string()
            .contains("uint16 takes a whole number from 0 to 65535"),
        "{e}"
    );
}

#[test]
fn a_full_key_shared_by_systems_sets_the_configurable_ones() {
    let xml = r#"<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References/>
  <VirtualSystemCollection ovf:id="c"><Info>c</Info>
    <VirtualSystem ovf:id="a"><Info>a</Info><ProductSection><Info>p</Info>
      <Property ovf:key="ip" ovf:userConfigurable="true" ovf:value="1"/></ProductSection></VirtualSystem>
    <VirtualSystem ovf:id="b"><Info>b</Info><ProductSection><Info>p</Info>
      <Property ovf:key="ip" ovf:value="2"/><Property ovf:key="lock" ovf:value="x"/></ProductSection></VirtualSystem>
  </VirtualSystemCollection>
</Envelope>"#;
    let e = parse_descriptor(xml.as_bytes()).unwrap();
    let r = resolve(&e, None, &set(&[("ip", "9")])).unwrap();
    let values: Vec<(&str, &str)> = r
        .properties
        .iter()
        .map(|p| (p.owner.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(values, vec![("a", "9"), ("b", "2"), ("b", "x")]);
    assert!(matches!(
        resolve(&e, None, &set(&[("lock", "y")])),
        Err(PropertyError::NotConfigurable { .. })
    ));
}

#[test]
fn later_assignments_win_and_everything_given_completes_it() {
    let r = resolve(
        &env(),
        None,
        &set(&[("hostname", "a"), ("port", "1"), ("hostname", "b")]),
    )
    .unwrap();
    r.require_complete().unwrap();
    assert_eq!(r.value_of("hostname"), Some("b"));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn capacities_use_final_values() {
    let e = env();
    assert_eq!(e.disks[0].capacity_property.as_deref(), Some("data_gib"));
    assert_eq!(
        e.disks[0].capacity_bytes,
        2 << 30,
        "the default until decided"
    );
    let r = resolve(
        &e,
        None,
        &set(&[("data_gib", "5"), ("hostname", "h"), ("port", "1")]),
    )
    .unwrap();
    assert_eq!(
        apply_to_envelope(&e, &r).unwrap().disks[0].capacity_bytes,
        5 << 30
    );
    let r = resolve(&e, Some("large"), &[]).unwrap();
    assert_eq!(
        apply_to_envelope(&e, &r).unwrap().disks[0].capacity_bytes,
        20 << 30
    );
    let e = parse_descriptor(DESCRIPTOR.replace(r#"ovf:value="2">"#, ">").as_bytes()).unwrap();
    assert_eq!(e.disks[0].capacity_bytes, 0, "no default: decided later");
    let r = resolve(&e, None, &[]).unwrap();
    assert!(r.missing.iter().any(|m| m.full_key == "data_gib"));
    assert_eq!(
        apply_to_envelope(&e, &r).unwrap().disks[0].capacity_bytes,
        0
    );
    let r = resolve(&e, None, &set(&[("data_gib", "1")])).unwrap();
    assert_eq!(
        apply_to_envelope(&e, &r).unwrap().disks[0].capacity_bytes,
        1 << 30
    );
    let bad = DESCRIPTOR.replace("${data_gib}", "${nothing}");
    let err = parse_descriptor(bad.as_bytes()).unwrap_err().to_string();
    assert!(
        err.contains("refers to property 'nothing', which the descriptor does not declare"),
        "{err}"
    );
}

#[test]
fn assignments_parse_from_the_command_line() {
    let a: Assignment = "user-data=a=b".parse().unwrap();
    assert_eq!((a.key.as_str(), a.value.as_str()), ("user-data", "a=b"));
    let a: Assignment = "k=".parse().unwrap();
    assert_eq!(a.value, "");
    assert!("novalue".parse::<Assignment>().is_err());
    assert!("=v".parse::<Assignment>().is_err());
}

fn pf(text: &str) -> Result<Vec<(String, String)>, PropFileError> {
    parse_prop_file("p.txt", text.as_bytes())
        .map(|v| v.into_iter().map(|a| (a.key, a.value)).collect())
}

#[test]
fn prop_files_take_quoted_multi_line_values() {
    let text = "# comment = not a key\n\n  hostname = web 1  \r\nempty=\n\
        single='a \"b\"\nc $x \\n'\n\
        double=\"x \\\"y\\\" \\\\ \\$HOME \\q\nnext \\\nsame\"   \n\
        url=http://h/?a=b#frag\n";
    let got = pf(text).unwrap();
    assert_eq!(
        got,
        vec![
            ("hostname".into(), " web 1  ".into()),
            ("empty".into(), "".into()),
            ("single".into(), "a \"b\"\nc $x \\n".into()),
            ("double".into(), "x \"y\" \\ $HOME \\q\nnext same".into()),
            ("url".into(), "http://h/?a=b#frag".into()),
        ]
    );
    let a = parse_prop_file("p.txt", b"a=1\nb='2\n3'\nc=4").unwrap();
    assert_eq!(a[2].origin, "p.txt:4", "origins count lines inside quotes");
    assert_eq!(a[1].origin, "p.txt:2");
}

#[test]
fn bad_prop_files_say_file_and_line() {
    let e = parse_prop_file("p.txt", b"a=1\nb=\xff\xfe\n").unwrap_err();
    assert!(matches!(e, PropFileError::NotUtf8 { line: 2, .. }), "{e}");
    assert!(e.to_string().starts_with("p.txt:2: not UTF-8"), "{e}");
    let e = pf("a=1\njust words\n").unwrap_err();
    assert_eq!(e.to_string(), "p.txt:2: expected KEY=VALUE");
    let e = pf("=v\n").unwrap_err();
    assert!(matches!(e, PropFileError::NoEquals { line: 1, .. }));
    let e = pf("a=1\nb=\"open\n\n").unwrap_err();
    assert!(
        matches!(
            e,
            PropFileError::Unclosed {
                line: 2,
                quote: '"',
                ..
            }
        ),
        "{e}"
    );
    let e = pf("b='x' y\n").unwrap_err();
    assert!(
        matches!(e, PropFileError::AfterQuote { line: 1, .. }),
        "{e}"
    );
}

#[test]
fn a_mebibyte_value_goes_through() {
    let big = "x".repeat(1 << 20);
    let got = pf(&format!("user-data=\"{big}\"\n")).unwrap();
    assert_eq!(got[0].1.len(), 1 << 20);
    assert_eq!(check("string", "", &big).unwrap().len(), 1 << 20);
}
