//! Networking of an instance: which backend each NIC gets, its MAC,
//! published ports (a free host port chosen for `-p 0:GUEST`); then the
//! backends are made (passt started, TAP attached) and handed to the
//! monitor as [`NicConfig`]s.
//!
//! Rules, for a package: every NIC in the descriptor becomes a virtio-net
//! device. The first one gets `--net`, else its network's `--network`
//! mapping, else user-mode networking (passt). The others get their
//! network's mapping, else no connection, with a note saying how to
//! connect them. Published ports go to the first user-mode NIC. A NIC's
//! MAC is `--mac` (first NIC), else the descriptor's, else a locally
//! administered one derived from the instance name and the NIC's index, so
//! every instance of one package has its own.
//!
//! passt is started on the instance's VM thread, which lives as long as the
//! VM: its PR_SET_PDEATHSIG follows the thread that started it.

use devices::net_backend::none::NoneBackend;
use devices::net_backend::passt_process::{start_passt, PasstError, PasstOptions};
use devices::net_backend::publish::{Protocol, Publish};
use devices::net_backend::tap::{TapBackend, TapError};
use devices::net_backend::NetBackend;
use devices::virtio::net::{format_mac, stable_mac};
use ovf_loader::machine::NicSpec;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use vmm::NicConfig;

mod ports;
pub use ports::choose_host_ports;

/// What the user asked for the network.
#[derive(Debug, Default, Clone)]
pub struct NetOptions {
    /// Published ports, served by the first user-mode NIC; host port 0
    /// means "choose a free one".
    pub publish: Vec<Publish>,
    /// How the first NIC is connected.
    pub net: Option<NetMode>,
    /// Modes for the NICs on networks the descriptor names.
    pub network: Vec<NetworkMap>,
    /// The first NIC's MAC, instead of the descriptor's or a derived one.
    pub mac: Option<[u8; 6]>,
}

/// Where a NIC's frames go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetMode {
    /// User-mode networking through passt.
    User,
    Tap(String),
    None,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NetOptionError {
    #[error("{0:?} is not a network mode: use user, tap=NAME or none")]
    Mode(String),
    #[error("--network {0:?}: expected \"NETWORK NAME=user|tap=NAME|none\"")]
    Mapping(String),
    #[error("{0:?} is not a unicast MAC address like 52:54:00:12:34:56")]
    Mac(String),
}

/// A MAC address option: `52:54:00:12:34:56` or `52-54-00-12-34-56`.
pub fn parse_mac_option(s: &str) -> Result<[u8; 6], NetOptionError> {
    parse_mac(s).ok_or_else(|| NetOptionError::Mac(s.to_string()))
}

/// The MAC of NIC `index` of instance `name`: locally administered,
/// unicast, the same for the same name, different between instances.
pub fn instance_mac(name: &str, index: usize) -> [u8; 6] {
    stable_mac(&format!("ovf-run/instance/{name}/nic{index}"))
}

impl FromStr for NetMode {
    type Err = NetOptionError;
    fn from_str(s: &str) -> Result<Self, NetOptionError> {
        match s {
            "user" => Ok(NetMode::User),
            "none" => Ok(NetMode::None),
            _ => match s.strip_prefix("tap=") {
                Some(name) if !name.is_empty() => Ok(NetMode::Tap(name.to_string())),
                _ => Err(NetOptionError::Mode(s.to_string())),
            },
        }
    }
}

impl fmt::Display for NetMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetMode::User => f.write_str("user-mode networking (passt)"),
            NetMode::Tap(name) => write!(f, "TAP interface {name}"),
            NetMode::None => f.write_str("not connected"),
        }
    }
}

/// `--network "VM Network=user"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkMap {
    pub network: String,
    pub mode: NetMode,
}

impl FromStr for NetworkMap {
    type Err = NetOptionError;
    /// Network names may hold '=': the first split whose right side is a
    /// mode wins ("a=b=tap=t0" is network "a=b", TAP t0).
    fn from_str(s: &str) -> Result<Self, NetOptionError> {
        for (i, _) in s.match_indices('=') {
            let (name, mode) = (&s[..i], &s[i + 1..]);
            if name.is_empty() {
                continue;
            }
            if let Ok(mode) = mode.parse() {
                return Ok(NetworkMap {
                    network: name.to_string(),
                    mode,
                });
            }
        }
        Err(NetOptionError::Mapping(s.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("--network {name:?}: the appliance has no network of that name ({known})")]
    UnknownNetwork { name: String, known: String },
    #[error("--publish needs a NIC with user-mode networking, and {0}; use --net user")]
    PublishWithoutUser(String),
    #[error("NIC {index}: {source}")]
    Passt { index: usize, source: PasstError },
    #[error("NIC {index}: {source}")]
    Tap { index: usize, source: TapError },
    #[error("cannot find a free host port on {addr} for guest port {guest_port}: {source}")]
    NoFreePort {
        addr: IpAddr,
        guest_port: u16,
        source: std::io::Error,
    },
}

/// One NIC, decided but not started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicPlan {
    pub network: Option<String>,
    pub mac: [u8; 6],
    pub mode: NetMode,
    /// User-mode only because it is the default (no --net, --network or
    /// --publish asked for it): when passt cannot start (not installed, no
    /// network on an offline machine) the appliance still boots, unconnected,
    /// with a warning, as `qemu -nic user` would still boot.
    pub by_default: bool,
}

/// "00:50:56:aa:bb:cc" or "00-50-56-AA-BB-CC"; unicast only.
fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    (mac[0] & 1 == 0 && mac != [0; 6]).then_some(mac)
}

fn network_label(n: &Option<String>) -> String {
    n.as_ref().map(|n| format!(" on {n:?}")).unwrap_or_default()
}

/// Decide every NIC of a package. `instance` names the instance (the seed
/// of derived MACs). Returns the plan and notes for stderr.
pub fn plan(
    nics: &[NicSpec],
    args: &NetOptions,
    instance: &str,
) -> Result<(Vec<NicPlan>, Vec<String>), NetError> {
    let mut notes = Vec::new();
    for m in &args.network {
        if !nics
            .iter()
            .any(|n| n.network.as_deref() == Some(&m.network))
        {
            let mut names: Vec<String> = nics
                .iter()
                .filter_map(|n| n.network.as_ref().map(|s| format!("{s:?}")))
                .collect();
            names.dedup();
            let known = if names.is_empty() {
                "it names none".to_string()
            } else {
                format!("it has {}", names.join(", "))
            };
            return Err(NetError::UnknownNetwork {
                name: m.network.clone(),
                known,
            });
        }
    }
    let mut specs: Vec<(Option<String>, Option<String>)> = nics
        .iter()
        .map(|n| (n.network.clone(), n.mac.clone()))
        .collect();
    if specs.is_empty() && (args.net.is_some() || !args.publish.is_empty()) {
        notes.push(
            "the appliance describes no network adapter; adding one for --net/--publish".into(),
        );
        specs.push((None, None));
    }
    let mut unconnected = Vec::new();
    let mut out = Vec::new();
    for (i, (network, mac)) in specs.into_iter().enumerate() {
        let mapped = network.as_ref().and_then(|name| {
            args.network
                .iter()
                .rev()
                .find(|m| &m.network == name)
                .map(|m| m.mode.clone())
        });
        let mut by_default = false;
        let mode = match (i, &args.net, mapped) {
            (0, Some(m), _) => m.clone(),
            (_, _, Some(m)) => m,
            (0, None, None) => {
                by_default = args.publish.is_empty();
                NetMode::User
            }
            _ => {
                unconnected.push(i);
                NetMode::None
            }
        };
        let given = mac.as_deref().and_then(parse_mac);
        if let (Some(m), None) = (&mac, given) {
            notes.push(format!(
                "NIC {i}: ignoring the descriptor's MAC {m:?} (not a unicast address)"
            ));
        }
        let wanted = if i == 0 { args.mac } else { None };
        let mac = wanted
            .or(given)
            .unwrap_or_else(|| instance_mac(instance, i));
        out.push(NicPlan {
            network,
            mac,
            mode,
            by_default,
        });
    }
    if !unconnected.is_empty() {
        let what: Vec<String> = unconnected
            .iter()
            .map(|&i| format!("NIC {i}{}", network_label(&out[i].network)))
            .collect();
        let example = unconnected
            .iter()
            .find_map(|&i| out[i].network.clone())
            .map(|n| format!("--network \"{n}=user\""))
            .unwrap_or_else(|| "--network NAME=user".into());
        notes.push(format!(
            "{} not connected (only the first NIC is by default; connect with {example})",
            what.join(", ")
        ));
    }
    if !args.publish.is_empty() && !out.iter().any(|p| p.mode == NetMode::User) {
        let why = match out.first() {
            None => "the appliance has none".to_string(),
            Some(p) => format!("the first NIC is {}", p.mode),
        };
        return Err(NetError::PublishWithoutUser(why));
    }
    Ok((out, notes))
}

/// `http://127.0.0.1:18080 → guest :80` for the progress line.
pub fn describe_publish(p: &Publish) -> String {
    let addr = match p.addr {
        IpAddr::V6(a) => format!("[{a}]"),
        IpAddr::V4(a) => a.to_string(),
    };
    match (p.protocol, p.guest_port) {
        (Protocol::Tcp, 80 | 8000 | 8080) => {
            format!("http://{addr}:{} → guest :{}", p.host_port, p.guest_port)
        }
        (Protocol::Tcp, 443 | 8443) => {
            format!("https://{addr}:{} → guest :{}", p.host_port, p.guest_port)
        }
        (proto, g) => format!("{addr}:{}/{proto} → guest :{g}/{proto}", p.host_port),
    }
}

/// Make the backends. Returns the NICs and progress lines for stderr.
pub fn start(
    plans: &[NicPlan],
    publish: &[Publish],
) -> Result<(Vec<NicConfig>, Vec<String>), NetError> {
    start_with(plans, publish, Path::new("passt"))
}

/// [`start`] with the passt program named (tests use a missing one).
fn start_with(
    plans: &[NicPlan],
    publish: &[Publish],
    passt: &Path,
) -> Result<(Vec<NicConfig>, Vec<String>), NetError> {
    let mut nics = Vec::new();
    let mut lines = Vec::new();
    let mut published = false;
    for (index, p) in plans.iter().enumerate() {
        let mut ports = Vec::new();
        let backend: Box<dyn NetBackend> = match &p.mode {
            NetMode::User => {
                if !published {
                    ports = publish.to_vec();
                    published = true;
                }
                let mut options = PasstOptions::new(p.mac, ports.clone());
                options.binary = passt.to_path_buf();
                match start_passt(&options) {
                    Ok(b) => Box::new(b),
                    Err(source) if p.by_default => {
                        lines.push(format!(
                            "warning: NIC {index}{}: no network: {source}; the appliance runs unconnected",
                            network_label(&p.network),
                        ));
                        nics.push(NicConfig::new(p.mac, Box::new(NoneBackend)));
                        continue;
                    }
                    Err(source) => return Err(NetError::Passt { index, source }),
                }
            }
            NetMode::Tap(name) => {
                Box::new(TapBackend::open(name).map_err(|source| NetError::Tap { index, source })?)
            }
            NetMode::None => Box::new(NoneBackend),
        };
        lines.push(format!(
            "NIC {index}{} ({}): {}",
            network_label(&p.network),
            format_mac(&p.mac),
            p.mode
        ));
        lines.extend(ports.iter().map(describe_publish));
        nics.push(NicConfig::new(p.mac, backend));
    }
    Ok((nics, lines))
}

/// `ovf-run boot`: one NIC when --net or --publish asks for it.
pub fn plan_for_boot(args: &NetOptions) -> Result<Vec<NicPlan>, NetError> {
    if args.net.is_none() && args.publish.is_empty() {
        return Ok(Vec::new());
    }
    let mode = args.net.clone().unwrap_or(NetMode::User);
    if !args.publish.is_empty() && mode != NetMode::User {
        return Err(NetError::PublishWithoutUser(format!("--net is {mode}")));
    }
    Ok(vec![NicPlan {
        network: None,
        mac: args.mac.unwrap_or_else(|| stable_mac("ovf-run boot/nic0")),
        mode,
        by_default: false,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nic(network: &str, mac: Option<&str>) -> NicSpec {
        NicSpec {
            network: Some(network.to_string()),
            model: Some("VmxNet3".into()),
            mac: mac.map(String::from),
        }
    }

    fn args(net: Option<&str>, network: &[&str], publish: &[&str]) -> NetOptions {
        NetOptions {
            publish: publish.iter().map(|p| p.parse().unwrap()).collect(),
            net: net.map(|n| n.parse().unwrap()),
            network: network.iter().map(|m| m.parse().unwrap()).collect(),
            mac: None,
        }
    }

    #[test]
    fn modes_and_mappings_parse() {
        assert_eq!("user".parse(), Ok(NetMode::User));
        assert_eq!("none".parse(), Ok(NetMode::None));
        assert_eq!("tap=tap0".parse(), Ok(NetMode::Tap("tap0".into())));
        assert!("tap=".parse::<NetMode>().is_err());
        assert!("bridge".parse::<NetMode>().is_err());
        let m: NetworkMap = "VM Network=tap=t0".parse().unwrap();
        assert_eq!(
            (m.network.as_str(), m.mode),
            ("VM Network", NetMode::Tap("t0".into()))
        );
        let m: NetworkMap = "a=b=user".parse().unwrap();
        assert_eq!(m.network, "a=b");
        assert!("VM Network".parse::<NetworkMap>().is_err());
        assert!("=user".parse::<NetworkMap>().is_err());
        assert!("x=wifi".parse::<NetworkMap>().is_err());
    }

    #[test]
    fn first_nic_is_user_mode_and_the_others_unconnected_with_a_note() {
        let nics = [nic("VM Network", None), nic("Internal", None)];
        let (p, notes) = plan(&nics, &NetOptions::default(), "seed").unwrap();
        assert_eq!(p[0].mode, NetMode::User);
        assert_eq!(p[1].mode, NetMode::None);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("--network \"Internal=user\""),
            "{notes:?}"
        );
    }

    #[test]
    fn net_wins_for_the_first_nic_and_network_maps_by_name() {
        let nics = [nic("VM Network", None), nic("Internal", None)];
        let a = args(Some("none"), &["Internal=tap=t1", "VM Network=user"], &[]);
        let (p, notes) = plan(&nics, &a, "seed").unwrap();
        assert_eq!(p[0].mode, NetMode::None);
        assert_eq!(p[1].mode, NetMode::Tap("t1".into()));
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn unknown_network_names_the_known_ones() {
        let nics = [nic("VM Network", None)];
        let e = plan(&nics, &args(None, &["LAN=user"], &[]), "s").unwrap_err();
        assert!(e.to_string().contains("\"VM Network\""), "{e}");
    }

    #[test]
    fn macs_come_from_the_descriptor_else_stable_and_local() {
        let nics = [
            nic("a", Some("00:50:56:AA:bb:01")),
            nic("b", None),
            nic("c", Some("01:00:5e:00:00:01")),
        ];
        let (p, notes) = plan(&nics, &NetOptions::default(), "seed").unwrap();
        assert_eq!(p[0].mac, [0x00, 0x50, 0x56, 0xaa, 0xbb, 0x01]);
        assert_eq!(p[1].mac[0] & 3, 2, "locally administered unicast");
        assert_eq!(
            p[1].mac,
            plan(&nics, &NetOptions::default(), "seed").unwrap().0[1].mac
        );
        assert_ne!(
            p[1].mac,
            plan(&nics, &NetOptions::default(), "other").unwrap().0[1].mac
        );
        assert_ne!(p[1].mac, p[2].mac);
        assert!(notes.iter().any(|n| n.contains("01:00:5e")), "{notes:?}");
        assert_eq!(
            parse_mac("00-50-56-aa-bb-cc"),
            Some([0, 0x50, 0x56, 0xaa, 0xbb, 0xcc])
        );
        assert_eq!(parse_mac("0:50:56:aa:bb:cc"), None);
    }

    #[test]
    fn the_mac_option_wins_for_the_first_nic_and_instances_differ() {
        let nics = [nic("a", Some("00:50:56:AA:bb:01")), nic("b", None)];
        let mut a = NetOptions {
            mac: Some(parse_mac_option("52:54:00:12:34:56").unwrap()),
            ..NetOptions::default()
        };
        let (p, _) = plan(&nics, &a, "one").unwrap();
        assert_eq!(p[0].mac, [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        assert_eq!(p[1].mac, instance_mac("one", 1));
        a.mac = None;
        let (q, _) = plan(&[nic("x", None)], &a, "two").unwrap();
        let (r, _) = plan(&[nic("x", None)], &a, "three").unwrap();
        assert_ne!(q[0].mac, r[0].mac, "each instance has its own MAC");
        assert_eq!(q[0].mac[0] & 3, 2, "locally administered unicast");
        assert_eq!(instance_mac("two", 0), q[0].mac, "derived from the name");
        assert!(parse_mac_option("01:00:5e:00:00:01").is_err());
        assert!(parse_mac_option("nope").is_err());
    }

    #[test]
    fn publish_needs_a_user_mode_nic() {
        let nics = [nic("VM Network", None)];
        let e = plan(&nics, &args(Some("tap=t0"), &[], &["8080:80"]), "s").unwrap_err();
        assert!(e.to_string().contains("--net user"), "{e}");
        assert!(e.to_string().contains("TAP interface t0"), "{e}");
    }

    #[test]
    fn a_package_without_nics_gets_one_only_when_asked() {
        assert!(plan(&[], &NetOptions::default(), "s").unwrap().0.is_empty());
        let (p, notes) = plan(&[], &args(None, &[], &["8080:80"]), "s").unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].mode, NetMode::User);
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn progress_lines_name_the_url() {
        let d = |s: &str| describe_publish(&s.parse().unwrap());
        assert_eq!(d("18080:80"), "http://127.0.0.1:18080 → guest :80");
        assert_eq!(d("[::1]:8443:443"), "https://[::1]:8443 → guest :443");
        assert_eq!(d("2222:22"), "127.0.0.1:2222/tcp → guest :22/tcp");
        assert_eq!(d("5353:53/udp"), "127.0.0.1:5353/udp → guest :53/udp");
    }

    #[test]
    fn none_and_tap_errors_start_nothing_heavy() {
        let plans = [NicPlan {
            network: None,
            mac: [2, 0, 0, 0, 0, 1],
            mode: NetMode::None,
            by_default: false,
        }];
        let (nics, lines) = start(&plans, &[]).unwrap();
        assert_eq!(nics.len(), 1);
        assert_eq!(lines, ["NIC 0 (02:00:00:00:00:01): not connected"]);
        let bad = [NicPlan {
            network: None,
            mac: [2, 0, 0, 0, 0, 1],
            mode: NetMode::Tap("bad/name".into()),
            by_default: false,
        }];
        let e = start(&bad, &[]).err().unwrap();
        assert!(
            e.to_string().starts_with("NIC 0: TAP interface name"),
            "{e}"
        );
    }

    #[test]
    fn default_user_mode_without_passt_boots_unconnected_but_asked_for_fails() {
        let missing = Path::new("/nonexistent/passt");
        let mut plans = [NicPlan {
            network: Some("VM Network".into()),
            mac: [2, 0, 0, 0, 0, 1],
            mode: NetMode::User,
            by_default: true,
        }];
        let (nics, lines) = start_with(&plans, &[], missing).unwrap();
        assert_eq!(nics.len(), 1);
        assert!(
            lines[0].starts_with("warning: NIC 0 on \"VM Network\": no network: ")
                && lines[0].contains("runs unconnected"),
            "{lines:?}"
        );
        plans[0].by_default = false;
        let e = start_with(&plans, &[], missing).err().unwrap();
        assert!(e.to_string().starts_with("NIC 0: "), "{e}");
    }

    #[test]
    fn only_an_unasked_first_nic_is_user_mode_by_default() {
        let nics = [nic("VM Network", None)];
        let (p, _) = plan(&nics, &args(None, &[], &[]), "seed").unwrap();
        assert!(p[0].by_default);
        let (p, _) = plan(&nics, &args(Some("user"), &[], &[]), "seed").unwrap();
        assert!(!p[0].by_default);
        let (p, _) = plan(&nics, &args(None, &[], &["18080:80"]), "seed").unwrap();
        assert!(!p[0].by_default);
    }
}
