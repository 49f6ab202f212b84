//! API key scopes (issue #24): what a key may do, as a small bit set.
//!
//! A key holds a *set* of scopes (`read,operate`); `admin` implies every
//! other. Each `/v1` route requires exactly one scope (its *endpoint
//! class*); the server's route table lives next to its authentication
//! middleware, the rules live here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One scope, which is also the class of the endpoints that require it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// `POST /v1/receipt` and `/v1/result`: what a webhook handler needs.
    Ingest,
    /// Events, incidents, timelines, the project without secrets.
    Read,
    /// Reprocess, resolve, reprocess batches, proof links.
    Operate,
    /// Project settings, signing secrets, provider tap, keys, the audit log;
    /// implies every other scope.
    Admin,
}

impl Scope {
    /// Every scope, least privileged first.
    pub const ALL: [Scope; 4] = [Scope::Ingest, Scope::Read, Scope::Operate, Scope::Admin];

    /// Its name (`ingest`, `read`, `operate`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Operate => "operate",
            Scope::Admin => "admin",
        }
    }

    /// Its bit in a [`ScopeSet`].
    pub const fn bit(self) -> u8 {
        match self {
            Scope::Ingest => 1,
            Scope::Read => 2,
            Scope::Operate => 4,
            Scope::Admin => 8,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a scope list does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// A name that is not a scope.
    #[error(
        "unknown scope `{0}`: use ingest, read, operate or admin (comma-separated, e.g. `read,operate`)"
    )]
    Unknown(String),
    /// No scope at all.
    #[error(
        "no scope given: use ingest, read, operate or admin (comma-separated, e.g. `read,operate`)"
    )]
    Empty,
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ScopeError::Unknown(s.trim().to_owned()))
    }
}

/// A set of scopes, as a bit set (the key cache tests it with one AND).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(u8);

impl ScopeSet {
    /// No scope (an unused key's endpoint classes).
    pub const EMPTY: ScopeSet = ScopeSet(0);
    /// The default of a new key: `ingest`.
    pub const INGEST: ScopeSet = ScopeSet(Scope::Ingest.bit());
    /// `admin` (what keys made before scopes existed became).
    pub const ADMIN: ScopeSet = ScopeSet(Scope::Admin.bit());

    /// The set of these bits; unknown bits are dropped.
    pub const fn from_bits(bits: u8) -> ScopeSet {
        ScopeSet(bits & 0b1111)
    }

    /// Its bits (stored as an integer).
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The set holding one scope.
    pub const fn only(scope: Scope) -> ScopeSet {
        ScopeSet(scope.bit())
    }

    /// This set with `scope` added.
    #[must_use]
    pub const fn with(self, scope: Scope) -> ScopeSet {
        ScopeSet(self.0 | scope.bit())
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether `scope` is literally in the set.
    pub const fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether a key with this set may call an endpoint requiring
    /// `required` (`admin` allows everything).
    #[inline]
    pub const fn allows(self, required: Scope) -> bool {
        self.0 & (required.bit() | Scope::Admin.bit()) != 0
    }

    /// Its scopes, least privileged first.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// The scopes as names.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }

    /// The smallest set that allows every class in `used` (`used` itself:
    /// each class is its own scope).
    pub fn needed_for(used: ScopeSet) -> ScopeSet {
        if used.contains(Scope::Admin) {
            ScopeSet::ADMIN
        } else {
            used
        }
    }

    /// What the set allows, spelled out (`admin` → every bit).
    const fn effective(self) -> u8 {
        if self.contains(Scope::Admin) {
            0b1111
        } else {
            self.0
        }
    }

    /// Whether a key with this set may do more than the endpoint classes
    /// `used` need (nothing to say for a key never used).
    pub fn over_privileged_for(self, used: ScopeSet) -> bool {
        !used.is_empty() && self.effective() != ScopeSet::needed_for(used).effective()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

impl FromStr for ScopeSet {
    type Err = ScopeError;

    /// A comma-separated list such as `read,operate`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = ScopeSet::EMPTY;
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            set = set.with(part.parse()?);
        }
        if set.is_empty() {
            return Err(ScopeError::Empty);
        }
        Ok(set)
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let scopes = Vec::<Scope>::deserialize(deserializer)?;
        Ok(scopes.into_iter().fold(ScopeSet::EMPTY, ScopeSet::with))
    }
}

/// The advice shown beside a key that may do more than it is used for:
/// e.g. "admin key only used for ingest — create an ingest key
/// (`sendpromptly key create --scope ingest`) and revoke this one". `None`
/// when the key fits its use (or was never used).
pub fn over_privilege_advice(scopes: ScopeSet, used: ScopeSet) -> Option<String> {
    if !scopes.over_privileged_for(used) {
        return None;
    }
    let needed = ScopeSet::needed_for(used);
    let article = if needed.contains(Scope::Read) && !needed.contains(Scope::Ingest) {
        "a"
    } else {
        "an"
    };
    Some(format!(
        "{scopes} key only used for {needed} — create {article} {needed} key \
         (`sendpromptly key create --scope {needed}`) and revoke this one"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_implies_every_scope_and_others_only_themselves() {
        for scope in Scope::ALL {
            assert!(ScopeSet::ADMIN.allows(scope));
        }
        assert!(ScopeSet::INGEST.allows(Scope::Ingest));
        assert!(!ScopeSet::INGEST.allows(Scope::Read));
        let ro: ScopeSet = "read,operate".parse().unwrap();
        assert!(ro.allows(Scope::Read) && ro.allows(Scope::Operate));
        assert!(!ro.allows(Scope::Ingest) && !ro.allows(Scope::Admin));
    }

    #[test]
    fn parses_and_prints_lists() {
        let set: ScopeSet = " Operate , read ".parse().unwrap();
        assert_eq!(set.to_string(), "read,operate");
        assert_eq!(
            "nope".parse::<ScopeSet>(),
            Err(ScopeError::Unknown("nope".into()))
        );
        assert_eq!(",".parse::<ScopeSet>(), Err(ScopeError::Empty));
        assert_eq!(
            serde_json::to_string(&set).unwrap(),
            r#"["read","operate"]"#
        );
        let back: ScopeSet = serde_json::from_str(r#"["admin"]"#).unwrap();
        assert_eq!(back, ScopeSet::ADMIN);
    }

    #[test]
    fn advice_names_what_the_key_is_used_for() {
        let advice = over_privilege_advice(ScopeSet::ADMIN, ScopeSet::INGEST).unwrap();
        assert!(advice.starts_with("admin key only used for ingest — create an ingest key"));
        assert_eq!(
            over_privilege_advice(ScopeSet::INGEST, ScopeSet::INGEST),
            None
        );
        assert_eq!(
            over_privilege_advice(ScopeSet::ADMIN, ScopeSet::EMPTY),
            None
        );
        let admin_used = ScopeSet::ADMIN.with(Scope::Read);
        assert_eq!(over_privilege_advice(ScopeSet::ADMIN, admin_used), None);
        let ro: ScopeSet = "read,operate".parse().unwrap();
        let advice = over_privilege_advice(ro, ScopeSet::only(Scope::Read)).unwrap();
        assert!(advice.starts_with("read,operate key only used for read — create a read key"));
    }
}
