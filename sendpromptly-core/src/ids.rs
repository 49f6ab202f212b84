//! Prefixed, time-ordered, random ids: `inc_…`, `rep_…`, `prf_…`, `prj_…`.
//!
//! An id is the prefix, then 26 Crockford base32 characters encoding a
//! 48-bit millisecond time and 80 random bits (the ULID layout), so ids sort
//! by creation time and cannot be guessed. The time and the randomness are
//! passed in: this module reads neither the clock nor the OS.

use rand::RngCore;

use crate::Timestamp;

/// Prefix of incident ids.
pub const INCIDENT: &str = "inc_";
/// Prefix of reprocess (repair callback) ids.
pub const REPROCESS: &str = "rep_";
/// Prefix of proof link ids.
pub const PROOF_LINK: &str = "prf_";
/// Reprocess batches.
pub const REPROCESS_BATCH: &str = "rpb_";
/// Prefix of alert ids (the `webhook-id` of signed webhook alerts).
pub const ALERT: &str = "alr_";
/// Prefix of project ids.
pub const PROJECT: &str = "prj_";
/// Prefix of API key ids (the id, not the secret key).
pub const API_KEY: &str = "key_";
/// Prefix of console user ids.
pub const USER: &str = "usr_";
/// Audit log entry ids.
pub const AUDIT: &str = "aud_";

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new id: `prefix` followed by a ULID for `now` with randomness from `rng`.
pub fn new_id(prefix: &str, now: Timestamp, rng: &mut impl RngCore) -> String {
    let millis =
        u128::from(u64::try_from(now.unix_millis().max(0)).unwrap_or(0) & 0xFFFF_FFFF_FFFF);
    let mut random = [0u8; 10];
    rng.fill_bytes(&mut random);
    let random_bits = random
        .iter()
        .fold(0u128, |acc, byte| (acc << 8) | u128::from(*byte));
    let value = (millis << 80) | random_bits;
    let mut out = String::with_capacity(prefix.len() + 26);
    out.push_str(prefix);
    for i in (0..26).rev() {
        let index = usize::try_from((value >> (i * 5)) & 0x1F).unwrap_or(0);
        out.push(char::from(CROCKFORD[index]));
    }
    out
}

/// Whether `id` has the shape of an id with this prefix.
pub fn has_shape(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == 26 && rest.bytes().all(|b| CROCKFORD.contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ids_are_prefixed_and_sort_by_time() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let a = new_id(INCIDENT, Timestamp::from_unix_millis(1_000), &mut rng);
        let b = new_id(INCIDENT, Timestamp::from_unix_millis(2_000), &mut rng);
        assert!(has_shape(&a, INCIDENT), "{a}");
        assert!(a < b);
        assert!(!has_shape(&a, REPROCESS));
        assert!(!has_shape("inc_short", INCIDENT));
    }
}
