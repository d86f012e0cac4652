//! The names of the keys the Redis backend uses, all under `[state] key_prefix`.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `{prefix}log` | stream | one entry per committed change, followed by every replica |
//! | `{prefix}revoked` | hash | share id -> revoked at (unix seconds, the earliest wins) |
//! | `{prefix}cases` | hash | case -> not_before (the latest wins) |
//! | `{prefix}shares` | hash | share id -> its record (the state codec), without counters |
//! | `{prefix}uses` | hash | share id -> link opens, counted by `HINCRBY` |
//! | `{prefix}first_used` | hash | share id -> first use (the earliest wins) |
//! | `{prefix}last_used` | hash | share id -> last use (the latest wins) |

/// Every key name, built once from the prefix.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    pub(crate) log: String,
    pub(crate) revoked: String,
    pub(crate) cases: String,
    pub(crate) shares: String,
    pub(crate) uses: String,
    pub(crate) first_used: String,
    pub(crate) last_used: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Keys {
        let key = |name: &str| format!("{prefix}{name}");
        Keys {
            log: key("log"),
            revoked: key("revoked"),
            cases: key("cases"),
            shares: key("shares"),
            uses: key("uses"),
            first_used: key("first_used"),
            last_used: key("last_used"),
        }
    }

    /// In the order the commit script expects them as KEYS[1..7].
    pub(crate) fn in_script_order(&self) -> [&str; 7] {
        [
            &self.log,
            &self.revoked,
            &self.cases,
            &self.shares,
            &self.uses,
            &self.first_used,
            &self.last_used,
        ]
    }
}
