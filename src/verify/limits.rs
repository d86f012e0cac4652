//! The `[verify]` settings and what a rate-limited guest is told: which limit, and when to try again.

use std::fmt;
use std::time::Duration;

/// `[verify]`, validated. Defaults follow issue 4: codes live 5 minutes, 5 wrong tries per code,
/// 30 s between sends, 5 codes per share per hour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifySettings {
    pub code_ttl: Duration,
    pub max_attempts: u32,
    pub resend_cooldown: Duration,
    pub max_codes_per_hour: u32,
    pub max_sends_per_address_per_hour: u32,
    pub max_failures_per_address_per_hour: u32,
}

impl Default for VerifySettings {
    fn default() -> VerifySettings {
        VerifySettings {
            code_ttl: Duration::from_secs(5 * 60),
            max_attempts: 5,
            resend_cooldown: Duration::from_secs(30),
            max_codes_per_hour: 5,
            max_sends_per_address_per_hour: 20,
            max_failures_per_address_per_hour: 50,
        }
    }
}

impl VerifySettings {
    pub fn code_ttl_secs(&self) -> i64 {
        secs(self.code_ttl)
    }

    pub fn resend_cooldown_secs(&self) -> i64 {
        secs(self.resend_cooldown)
    }
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// A request refused by a limit; the guest is told to come back after `retry_after_secs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    pub limit: Limit,
    /// At least 1.
    pub retry_after_secs: i64,
}

/// Which limit refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// `resend_cooldown` since this share's last code.
    Cooldown,
    /// `max_codes_per_hour` for this share.
    CodesPerShare,
    /// `max_sends_per_address_per_hour` from this client address.
    SendsPerAddress,
    /// `max_failures_per_address_per_hour` from this client address.
    FailuresPerAddress,
    /// The store holds as many shares or addresses as it may; refused rather than forgetting
    /// someone's counters (fail closed).
    StoreFull,
}

impl Limited {
    pub fn new(limit: Limit, retry_after_secs: i64) -> Limited {
        Limited {
            limit,
            retry_after_secs: retry_after_secs.max(1),
        }
    }
}

impl fmt::Display for Limited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.limit {
            Limit::Cooldown => "resend cooldown of the share",
            Limit::CodesPerShare => "codes per share per hour",
            Limit::SendsPerAddress => "code sends per client address per hour",
            Limit::FailuresPerAddress => "wrong codes per client address per hour",
            Limit::StoreFull => "verification store full",
        };
        write!(
            f,
            "rate limited ({what}), retry after {} s",
            self.retry_after_secs
        )
    }
}
