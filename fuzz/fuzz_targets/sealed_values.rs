//! Sealed values (the at-rest encryption of secrets) on arbitrary input:
//! opening a stored value that is malformed, names an unknown key or does
//! not authenticate is an error, never a panic; what is sealed opens to
//! itself under the same context only. The first line is the context.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sendpromptly_server::secrets::Keyring;

/// One keyring (a current and a previous key) for every input.
fn keyring() -> &'static Keyring {
    static KEYRING: OnceLock<Keyring> = OnceLock::new();
    KEYRING.get_or_init(|| Keyring::new(&[7; 32], &[[9; 32]]))
}

fuzz_target!(|data: &[u8]| {
    let keyring = keyring();
    let (context, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let stored = String::from_utf8_lossy(rest);
    let _ = Keyring::is_sealed(rest);
    let _ = Keyring::key_id_of(&stored);
    let _ = keyring.is_stale(&stored);
    let _ = keyring.open(context, &stored);
    let _ = keyring.open_text(context, &stored);

    let sealed = keyring.seal(context, rest);
    assert!(Keyring::is_sealed(sealed.as_bytes()));
    assert_eq!(keyring.open(context, &sealed).expect("opens"), rest);
    let mut other = context.to_vec();
    other.push(0);
    assert!(keyring.open(&other, &sealed).is_err(), "opened under another context");
});
