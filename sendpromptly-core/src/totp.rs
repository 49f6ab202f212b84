//! TOTP (RFC 6238) for console two-factor sign-in: HMAC-SHA-1, 6 digits,
//! 30-second steps, a code accepted one step either side of now, and a step
//! used once only (the caller keeps the last accepted step).

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;

/// Length of a step in seconds.
pub const STEP_SECONDS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Bytes of a new secret (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new random secret.
pub fn new_secret(rng: &mut impl RngCore) -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rng.fill_bytes(&mut secret);
    secret
}

/// RFC 4648 base32 without padding (what authenticator apps take).
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Decodes base32 (case, spaces and `=` padding ignored); `None` if not base32.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let c = c.to_ascii_uppercase() as u8;
        let value = BASE32.iter().position(|&b| b == c)? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    Some(out)
}

/// HOTP (RFC 4226) of `counter` with `digits` digits.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return 0; // HMAC takes a key of any length: unreachable.
    };
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = (hash[19] & 0x0f) as usize;
    let binary = (u32::from(hash[offset] & 0x7f) << 24)
        | (u32::from(hash[offset + 1]) << 16)
        | (u32::from(hash[offset + 2]) << 8)
        | u32::from(hash[offset + 3]);
    binary % 10u32.pow(digits)
}

/// The step of a Unix time.
pub fn step_at(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

/// The 6-digit code of a step, zero-padded.
pub fn code_at_step(secret: &[u8], step: i64) -> String {
    format!(
        "{:0width$}",
        hotp(secret, step.max(0) as u64, DIGITS),
        width = DIGITS as usize
    )
}

/// The step whose code `code` is, within one step of `unix_seconds`, and
/// later than `last_used_step` (a code is accepted once); `None` if not.
pub fn verify(
    secret: &[u8],
    code: &str,
    unix_seconds: i64,
    last_used_step: Option<i64>,
) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(unix_seconds);
    (now - 1..=now + 1)
        .filter(|step| last_used_step.is_none_or(|last| *step > last))
        .find(|step| {
            let expected = code_at_step(secret, *step);
            subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.as_bytes()).into()
        })
}

/// The `otpauth://` URI an authenticator app reads from the QR code.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        enc(issuer),
        enc(account),
        base32_encode(secret),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, the SHA-1 column (8 digits, seed "12345678901234567890").
    #[test]
    fn rfc6238_appendix_b_sha1_vectors() {
        let seed = b"12345678901234567890";
        let vectors: [(i64, u32); 6] = [
            (59, 94_287_082),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ];
        for (time, expected) in vectors {
            assert_eq!(hotp(seed, step_at(time) as u64, 8), expected, "T = {time}");
        }
        // The 6-digit code is the last six digits.
        assert_eq!(code_at_step(seed, step_at(59)), "287082");
    }

    #[test]
    fn rfc4226_appendix_d_hotp_vectors() {
        let seed = b"12345678901234567890";
        let expected = [755_224, 287_082, 359_152, 969_429, 338_314];
        for (counter, code) in expected.into_iter().enumerate() {
            assert_eq!(hotp(seed, counter as u64, 6), code);
        }
    }

    #[test]
    fn a_code_is_accepted_one_step_either_side_and_once() {
        let secret = b"12345678901234567890";
        let now = 1_111_111_111;
        let code = code_at_step(secret, step_at(now));
        let step = verify(secret, &code, now, None).expect("current code");
        assert_eq!(step, step_at(now));
        assert_eq!(
            verify(secret, &code, now, Some(step)),
            None,
            "replay refused"
        );
        let previous = code_at_step(secret, step_at(now) - 1);
        assert!(verify(secret, &previous, now, None).is_some());
        let old = code_at_step(secret, step_at(now) - 2);
        assert!(verify(secret, &old, now, None).is_none());
        assert!(verify(secret, "12345", now, None).is_none());
        assert!(verify(secret, "abcdef", now, None).is_none());
    }

    #[test]
    fn base32_round_trips() {
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_decode("mzxw 6ytb oi======").unwrap(), b"foobar");
        assert!(base32_decode("1!").is_none());
        let secret = b"12345678901234567890";
        assert_eq!(base32_decode(&base32_encode(secret)).unwrap(), secret);
        let uri = otpauth_uri("SendPromptly", "a@b.c", secret);
        assert!(uri.starts_with(
            "otpauth://totp/SendPromptly:a@b.c?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        ));
    }
}
