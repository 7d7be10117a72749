//! The network options of `ovf-run` and `ovf-run boot` (the decisions are
//! the library's: `ovf_run::net`).

use clap::Args;
use devices::net_backend::publish::Publish;
use ovf_run::net::{parse_mac_option, NetMode, NetOptions, NetworkMap};

#[derive(Args, Debug, Default, Clone)]
pub struct NetArgs {
    /// Publish a guest port on the host, like docker run -p:
    /// [[ADDR:]HOST:]GUEST[/tcp|/udp], on 127.0.0.1 unless ADDR is given
    /// (repeatable). GUEST, 0:GUEST or ADDR::GUEST choose a free host port
    /// (printed, and in the events and `ovf-run port`). Served by the
    /// first user-mode NIC.
    #[arg(
        short = 'p',
        long = "publish",
        value_name = "[[ADDR:]HOST:]GUEST[/PROTO]"
    )]
    pub publish: Vec<Publish>,
    /// How the first NIC is connected: user (passt, the default),
    /// tap=NAME (a host TAP interface) or none.
    #[arg(long, value_name = "user|tap=NAME|none")]
    pub net: Option<NetMode>,
    /// Connect the NICs on a network the descriptor names:
    /// "NETWORK NAME=user|tap=NAME|none" (repeatable).
    #[arg(long = "network", value_name = "NETWORK=MODE")]
    pub network: Vec<NetworkMap>,
    /// The first NIC's MAC address (default: the descriptor's, else one
    /// derived from the instance name).
    #[arg(long, value_name = "MAC", value_parser = parse_mac_option)]
    pub mac: Option<[u8; 6]>,
}

impl NetArgs {
    pub fn options(&self) -> NetOptions {
        NetOptions {
            publish: self.publish.clone(),
            net: self.net.clone(),
            network: self.network.clone(),
            mac: self.mac,
        }
    }
}
