//! Validation of `[server] loopback_congestion_control`: the TCP congestion control of
//! connections whose other end is this host (`crate::loopback_congestion`). `"reno"` unless
//! set; `"system"` keeps the host's.

use toml::Spanned;

use super::Validator;
use crate::loopback_congestion::{DEFAULT, LoopbackCongestion, SYSTEM};

/// The kernel's `TCP_CA_NAME_MAX` is 16 bytes, its terminating zero included.
const LONGEST_NAME: usize = 15;

impl Validator<'_, '_> {
    /// `None`: invalid (reported).
    pub(super) fn loopback_congestion(
        &mut self,
        raw: Option<&Spanned<String>>,
    ) -> Option<LoopbackCongestion> {
        let Some(raw) = raw else {
            return Some(LoopbackCongestion::named(DEFAULT));
        };
        let name = raw.get_ref().as_str();
        if name == SYSTEM {
            return Some(LoopbackCongestion::system());
        }
        let well_formed = !name.is_empty()
            && name.len() <= LONGEST_NAME
            && name.bytes().all(|byte| {
                byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-'
            });
        if !well_formed {
            self.diag.error(
                raw.span(),
                format_args!(
                    "server.loopback_congestion_control: {name:?} is not a congestion control \
                     name (1 to {LONGEST_NAME} of a-z, 0-9, _ and -, as in \
                     /proc/sys/net/ipv4/tcp_available_congestion_control); \"{SYSTEM}\" keeps \
                     the host's"
                ),
            );
            return None;
        }
        Some(LoopbackCongestion::named(name))
    }
}
