//! The records the journal and snapshots hold, their payload layout (a tag byte, then fields), and
//! the share state they carry. Journal and snapshot use the same records, so replay has one path.

use super::codec::{DecodeError, Decoder, Encoder};
use super::{NewShare, SeenShare};

const TAG_SHARE: u8 = 1;
const TAG_REVOKED_SHARE: u8 = 2;
const TAG_REVOKED_CASE: u8 = 3;
const TAG_END: u8 = 4;

/// How the store learned of a share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Created through the admin API: its metadata is authoritative.
    Api,
    /// Minted elsewhere; known from the claims its link carried on first use.
    Link,
}

impl Origin {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Origin::Api => "api",
            Origin::Link => "link",
        }
    }
}

/// What the store knows about one share. Also a record: a create is a state with no uses, a use
/// batch is a state with only claims and counters; merging adds them up (see [`ShareState::merge`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ShareState {
    pub(crate) origin: Origin,
    pub(crate) case: Option<Box<str>>,
    pub(crate) scope: Option<Box<str>>,
    pub(crate) issued_at: Option<i64>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) email: Option<Box<str>>,
    pub(crate) lang: Option<Box<str>>,
    pub(crate) note: Option<Box<str>>,
    pub(crate) created_by: Option<Box<str>>,
    pub(crate) client: Option<Box<str>>,
    pub(crate) uses: u64,
    pub(crate) first_used_at: Option<i64>,
    pub(crate) last_used_at: Option<i64>,
}

impl ShareState {
    pub(crate) fn created(share: &NewShare) -> ShareState {
        ShareState {
            origin: Origin::Api,
            case: Some(share.case.as_str().into()),
            scope: Some(share.scope.as_str().into()),
            issued_at: Some(share.issued_at),
            expires_at: Some(share.expires_at),
            email: share.email.as_deref().map(Box::from),
            lang: share.lang.as_deref().map(Box::from),
            note: share.note.as_deref().map(Box::from),
            created_by: share.created_by.as_deref().map(Box::from),
            client: Some(share.client.as_str().into()),
            uses: 0,
            first_used_at: None,
            last_used_at: None,
        }
    }

    /// A share known only from a link's claims (an external token on first use).
    pub(crate) fn seen(share: &SeenShare<'_>) -> ShareState {
        ShareState {
            case: Some(share.case.into()),
            scope: Some(share.scope.into()),
            issued_at: Some(share.issued_at),
            expires_at: Some(share.expires_at),
            email: share.email.map(Box::from),
            lang: share.lang.map(Box::from),
            ..ShareState::unknown()
        }
    }

    /// Nothing known but the id: only counters may follow.
    pub(crate) fn unknown() -> ShareState {
        ShareState {
            origin: Origin::Link,
            case: None,
            scope: None,
            issued_at: None,
            expires_at: None,
            email: None,
            lang: None,
            note: None,
            created_by: None,
            client: None,
            uses: 0,
            first_used_at: None,
            last_used_at: None,
        }
    }

    /// One more use (a link exchanged) at `now`.
    pub(crate) fn count_use(&mut self, now: i64) {
        self.uses = self.uses.saturating_add(1);
        self.first_used_at = Some(self.first_used_at.map_or(now, |first| first.min(now)));
        self.touch(now);
    }

    /// Activity at `now`: only the last use moves.
    pub(crate) fn touch(&mut self, now: i64) {
        self.last_used_at = Some(self.last_used_at.map_or(now, |last| last.max(now)));
    }

    pub(crate) fn has_claims(&self) -> bool {
        self.case.is_some()
    }

    /// Folds `other` into `self`. The merge rules: API metadata wins over link claims, link claims
    /// only fill what is unknown; use counters add up, first use = min, last use = max. Applying
    /// the same records in journal order therefore always gives the same state.
    pub(crate) fn merge(&mut self, other: ShareState) {
        let ShareState {
            origin,
            case,
            scope,
            issued_at,
            expires_at,
            email,
            lang,
            note,
            created_by,
            client,
            uses,
            first_used_at,
            last_used_at,
        } = other;
        if origin == Origin::Api {
            self.origin = Origin::Api;
            self.case = case;
            self.scope = scope;
            self.issued_at = issued_at;
            self.expires_at = expires_at;
            self.email = email;
            self.lang = lang;
            self.note = note;
            self.created_by = created_by;
            self.client = client;
        } else if !self.has_claims() && case.is_some() {
            // Every claim the link carried, taken together: they belong to one token.
            self.case = case;
            self.scope = scope;
            self.issued_at = issued_at;
            self.expires_at = expires_at;
            self.email = email;
            self.lang = lang;
        }
        self.uses = self.uses.saturating_add(uses);
        self.first_used_at = min_known(self.first_used_at, first_used_at);
        self.last_used_at = self.last_used_at.max(last_used_at);
    }

    /// Counters that are totals, not increments (the Redis backend's): the larger count, the
    /// earlier first use and the later last use win, so applying them twice is harmless.
    pub(crate) fn raise_counters(
        &mut self,
        uses: u64,
        first_used: Option<i64>,
        last_used: Option<i64>,
    ) {
        self.uses = self.uses.max(uses);
        self.first_used_at = min_known(self.first_used_at, first_used);
        self.last_used_at = self.last_used_at.max(last_used);
    }

    /// The same state without use counters: what a shared backend stores as the share's record
    /// (the counters are kept, and added up, apart from it).
    pub(crate) fn without_counters(&self) -> ShareState {
        ShareState {
            uses: 0,
            first_used_at: None,
            last_used_at: None,
            ..self.clone()
        }
    }

    pub(crate) fn has_counters(&self) -> bool {
        self.uses > 0 || self.first_used_at.is_some() || self.last_used_at.is_some()
    }

    fn encode(&self, enc: &mut Encoder<'_>) {
        enc.u8(match self.origin {
            Origin::Api => 1,
            Origin::Link => 2,
        });
        enc.opt_str(self.case.as_deref());
        enc.opt_str(self.scope.as_deref());
        enc.opt_i64(self.issued_at);
        enc.opt_i64(self.expires_at);
        enc.opt_str(self.email.as_deref());
        enc.opt_str(self.lang.as_deref());
        enc.opt_str(self.note.as_deref());
        enc.opt_str(self.created_by.as_deref());
        enc.opt_str(self.client.as_deref());
        enc.u64(self.uses);
        enc.opt_i64(self.first_used_at);
        enc.opt_i64(self.last_used_at);
    }

    fn decode(dec: &mut Decoder<'_>) -> Result<ShareState, DecodeError> {
        let origin = match dec.u8()? {
            1 => Origin::Api,
            2 => Origin::Link,
            _ => return Err("share record has an unknown origin"),
        };
        Ok(ShareState {
            origin,
            case: dec.opt_str()?,
            scope: dec.opt_str()?,
            issued_at: dec.opt_i64()?,
            expires_at: dec.opt_i64()?,
            email: dec.opt_str()?,
            lang: dec.opt_str()?,
            note: dec.opt_str()?,
            created_by: dec.opt_str()?,
            client: dec.opt_str()?,
            uses: dec.u64()?,
            first_used_at: dec.opt_i64()?,
            last_used_at: dec.opt_i64()?,
        })
    }
}

fn min_known(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (known, None) | (None, known) => known,
    }
}

/// One journal or snapshot record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    /// A share was created, or was used (merged into what is known, see [`ShareState::merge`]).
    Share { id: Box<str>, state: ShareState },
    /// A share id was revoked at `at`.
    RevokedShare { id: Box<str>, at: i64 },
    /// Every credential of `case` issued at or before `not_before` is revoked.
    RevokedCase { case: Box<str>, not_before: i64 },
    /// The last record of a snapshot: how many came before it, so a snapshot cut short on a
    /// record boundary is still noticed.
    End { records: u64 },
}

impl Record {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let mut enc = Encoder::new(out);
        match self {
            Record::Share { id, state } => {
                enc.u8(TAG_SHARE);
                enc.str(id);
                state.encode(&mut enc);
            }
            Record::RevokedShare { id, at } => {
                enc.u8(TAG_REVOKED_SHARE);
                enc.str(id);
                enc.i64(*at);
            }
            Record::RevokedCase { case, not_before } => {
                enc.u8(TAG_REVOKED_CASE);
                enc.str(case);
                enc.i64(*not_before);
            }
            Record::End { records } => {
                enc.u8(TAG_END);
                enc.u64(*records);
            }
        }
    }

    pub(crate) fn decode(payload: &[u8]) -> Result<Record, DecodeError> {
        let mut dec = Decoder::new(payload);
        let record = match dec.u8()? {
            TAG_SHARE => Record::Share {
                id: dec.boxed_str()?,
                state: ShareState::decode(&mut dec)?,
            },
            TAG_REVOKED_SHARE => Record::RevokedShare {
                id: dec.boxed_str()?,
                at: dec.i64()?,
            },
            TAG_REVOKED_CASE => Record::RevokedCase {
                case: dec.boxed_str()?,
                not_before: dec.i64()?,
            },
            TAG_END => Record::End {
                records: dec.u64()?,
            },
            _ => return Err("unknown record tag"),
        };
        dec.finish()?;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_share() -> ShareState {
        ShareState::created(&NewShare {
            id: "id-1".into(),
            case: "C-1".into(),
            scope: "read".into(),
            issued_at: 100,
            expires_at: 200,
            email: Some("a@example.org".into()),
            lang: None,
            note: Some("note".into()),
            created_by: None,
            client: "ops".into(),
        })
    }

    #[test]
    fn every_record_round_trips() {
        let records = [
            Record::Share {
                id: "id-1".into(),
                state: api_share(),
            },
            Record::RevokedShare {
                id: "id-2".into(),
                at: -3,
            },
            Record::RevokedCase {
                case: "C-9".into(),
                not_before: 77,
            },
            Record::End { records: 3 },
        ];
        for record in records {
            let mut buf = Vec::new();
            record.encode(&mut buf);
            assert_eq!(Record::decode(&buf), Ok(record));
        }
    }

    #[test]
    fn an_unknown_tag_is_refused() {
        assert_eq!(Record::decode(&[99]), Err("unknown record tag"));
    }

    #[test]
    fn uses_add_up_with_min_first_and_max_last() {
        let mut state = api_share();
        let mut use_a = ShareState::unknown();
        use_a.uses = 2;
        use_a.first_used_at = Some(150);
        use_a.last_used_at = Some(160);
        let mut use_b = ShareState::unknown();
        use_b.uses = 1;
        use_b.first_used_at = Some(140);
        use_b.last_used_at = Some(155);
        state.merge(use_a);
        state.merge(use_b);
        assert_eq!(state.uses, 3);
        assert_eq!(state.first_used_at, Some(140));
        assert_eq!(state.last_used_at, Some(160));
        assert_eq!(state.origin, Origin::Api);
        assert_eq!(state.note.as_deref(), Some("note"));
    }

    #[test]
    fn link_claims_fill_only_what_is_unknown() {
        let seen = |case: &'static str, lang: &'static str| {
            ShareState::seen(&SeenShare {
                id: "x",
                case,
                scope: "read",
                issued_at: 1,
                expires_at: 2,
                email: Some("a@example.org"),
                lang: Some(lang),
            })
        };
        let mut state = ShareState::unknown();
        state.merge(seen("C-first", "sv"));
        state.merge(seen("C-second", "de"));
        assert_eq!(state.case.as_deref(), Some("C-first"));
        assert_eq!(state.lang.as_deref(), Some("sv"));
        let mut api = api_share();
        api.merge(seen("C-other", "sv"));
        assert_eq!(api.case.as_deref(), Some("C-1"));
        assert_eq!(
            api.lang, None,
            "the API's metadata wins, even where it has none"
        );
    }

    #[test]
    fn a_use_known_by_id_only_takes_every_claim_of_the_link() {
        let mut state = ShareState::unknown();
        state.touch(5);
        state.merge(ShareState::seen(&SeenShare {
            id: "x",
            case: "C-link",
            scope: "read",
            issued_at: 1,
            expires_at: 2,
            email: Some("a@example.org"),
            lang: Some("sv"),
        }));
        assert_eq!(state.case.as_deref(), Some("C-link"));
        assert_eq!(state.scope.as_deref(), Some("read"));
        assert_eq!((state.issued_at, state.expires_at), (Some(1), Some(2)));
        assert_eq!(state.email.as_deref(), Some("a@example.org"));
        assert_eq!(state.lang.as_deref(), Some("sv"));
    }

    #[test]
    fn a_create_after_a_use_keeps_the_counters_and_takes_the_metadata() {
        let mut state = ShareState::seen(&SeenShare {
            id: "x",
            case: "C-link",
            scope: "read",
            issued_at: 1,
            expires_at: 2,
            email: None,
            lang: Some("sv"),
        });
        state.uses = 4;
        state.merge(api_share());
        assert_eq!(state.uses, 4);
        assert_eq!(state.case.as_deref(), Some("C-1"));
        assert_eq!(state.origin, Origin::Api);
    }
}
