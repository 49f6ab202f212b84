//! `uniffi-bindgen`, pinned to the workspace's uniffi version: generates the
//! Kotlin, Ruby and Swift sources from the built `sendpromptly_uniffi`
//! library (library mode). Run through `scripts/uniffi-generate.sh`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
