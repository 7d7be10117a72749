//! `ovf-run` as a library: start OVF/OVA appliances, wait until they
//! serve, hand their published ports to a test, and throw them away —
//! several at once in one process.
//!
//! The path from a package to a running VM is
//! [`Appliance::open`] → [`Appliance::verify`] → EULA decision
//! ([`LaunchOptions::accept_eula`]) → [`Appliance::plan`] (a
//! [`LaunchPlan`]: the pure mapping of the OVF machine and the overrides
//! onto the VM, in [`launch::plan`]) → [`LaunchPlan::start`] → an
//! [`Instance`]. The `ovf-run` binary is a thin command line over this.
//!
//! ```no_run
//! use ovf_run::{Appliance, LaunchOptions, ReadyWhen, Trust};
//! use std::time::Duration;
//!
//! let mut app = Appliance::open("debian-bookworm-mbr.ova".as_ref())?;
//! app.verify(&Trust { use_cache: true, ..Default::default() }, None)?;
//! let mut opts = LaunchOptions::default();
//! opts.accept_eula = true;
//! opts.overrides.memory_mib = Some(768);
//! opts.net.publish = vec!["0:80".parse()?]; // a free host port
//! let mut web = app.plan(&opts)?.start()?;
//! web.wait_ready(&["http:80".parse()?], Duration::from_secs(600))?;
//! let addr = web.host_addr(80).expect("published");
//! println!("the appliance serves on http://{addr}/");
//! let reason = web.stop(Duration::from_secs(30));
//! assert_eq!(reason, ovf_run::ExitReason::Poweroff);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `tests/sandbox.rs` runs this (four instances at once) in the KVM test
//! host. Modules: [`launch`] (package → plan), [`instance`] (the running
//! VM), [`ready`] (ready conditions), [`snapshots`] (snapshots and the
//! clones restored from them), [`events`] (the JSON Lines log),
//! [`state`] (instance directories, locks), [`net`] (NICs, MACs, ports),
//! [`host`] (host limits), [`duration`].

pub mod duration;
pub mod events;
pub mod host;
pub mod instance;
pub mod launch;
pub mod net;
pub mod ready;
pub mod snapshots;
pub mod state;

pub use duration::parse_duration;
pub use events::{Event, Record};
pub use host::HostLimits;
pub use instance::{ExitReason, Instance, ReadyError};
pub use launch::{Appliance, LaunchError, LaunchOptions, LaunchPlan, Trust};
pub use ready::ReadyWhen;
pub use snapshots::{restore, RestoreOptions, Saved, SnapshotError};
