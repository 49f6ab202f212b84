//! Signing secrets are encrypted at rest, through the real binary: with no
//! key configured an SQLite database gets a 0600 key file beside it, the
//! column holds only `spenc1:` ciphertext, a key rotation re-encrypts every
//! secret at start, a wrong key stops the start with a clear error (never
//! garbage signatures), and PostgreSQL without a key is refused.

use std::process::{Command, Output};

use sendpromptly_server::secrets::{self, Keyring};
use sendpromptly_server::store::Store;
use sendpromptly_server::store::sqlite::SqliteStore;

const BIN: &str = env!("CARGO_BIN_EXE_sendpromptly");

fn run(database_url: &str, extra: &[&str], args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["--database-url", database_url])
        .args(extra)
        .args(args)
        .env("SENDPROMPTLY_LOG", "info")
        .env_remove("SENDPROMPTLY_SECRET_KEY")
        .env_remove("SENDPROMPTLY_SECRET_KEY_FILE")
        .env_remove("SENDPROMPTLY_PREVIOUS_SECRET_KEYS")
        .output()
        .expect("run sendpromptly")
}

fn ok(out: Output) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    (stdout, stderr)
}

/// The signing-secret column as stored, read with a store that has no key
/// (reading the raw column needs none).
async fn raw_column(database_url: &str, project_id: &str) -> Vec<String> {
    let store = SqliteStore::connect(database_url).await.unwrap();
    let raw = store.stored_signing_secrets(project_id).await.unwrap();
    store.close().await;
    raw
}

#[tokio::test]
async fn sqlite_generates_a_key_file_seals_rotates_and_refuses_a_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sp.db");
    let url = format!("sqlite://{}", db.display());
    let key_file = dir.path().join("sp.db.secret-key");

    // First use: the key file is generated (0600) and the start says so.
    let (stdout, stderr) = ok(run(
        &url,
        &[],
        &["project", "create", "--name", "a", "--json"],
    ));
    let created: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let project_id = created["project_id"].as_str().unwrap().to_owned();
    let secret = created["signing_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert!(stderr.contains("generated a new one"), "{stderr}");
    assert!(stderr.contains("sp.db.secret-key"), "{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
    }
    let old_key_text = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_owned();
    let old_key = secrets::parse_master_key(&old_key_text, "test").unwrap();
    let old_id = Keyring::new(&old_key, &[]).current_id().to_owned();

    // The column holds ciphertext under that key, not the secret.
    let raw = raw_column(&url, &project_id).await;
    assert_eq!(raw.len(), 1);
    assert!(
        raw[0].starts_with(&format!("spenc1:{old_id}:")),
        "{}",
        raw[0]
    );
    assert!(!raw[0].contains(secret.trim_start_matches("whsec_")));
    // Not the whole file either.
    let file = std::fs::read(&db).unwrap();
    assert!(
        !file.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the signing secret is in the database file"
    );

    // A second command reuses the key file silently.
    let (_, stderr) = ok(run(&url, &[], &["project", "list"]));
    assert!(!stderr.contains("generated"), "{stderr}");

    // Rotation: a new current key, the old one as previous: re-encrypted at start.
    let new_key_text = secrets::new_master_key();
    let new_key = secrets::parse_master_key(&new_key_text, "test").unwrap();
    let new_id = Keyring::new(&new_key, &[]).current_id().to_owned();
    let (_, stderr) = ok(run(
        &url,
        &[
            "--secret-key",
            &new_key_text,
            "--previous-secret-keys",
            &old_key_text,
        ],
        &["project", "list"],
    ));
    assert!(stderr.contains("re-encrypted"), "{stderr}");
    assert!(!stderr.contains(&new_key_text) && !stderr.contains(&old_key_text));
    let raw = raw_column(&url, &project_id).await;
    assert!(
        raw[0].starts_with(&format!("spenc1:{new_id}:")),
        "{}",
        raw[0]
    );
    // The new key alone opens it and gives the same secret back.
    let store = SqliteStore::connect(&url)
        .await
        .unwrap()
        .with_keyring(std::sync::Arc::new(Keyring::new(&new_key, &[])));
    let read = store
        .signing_secrets(
            &project_id,
            sendpromptly_core::Timestamp::from_unix_seconds(4_000_000_000),
        )
        .await
        .unwrap();
    assert_eq!(read[0].secret, secret);
    store.close().await;

    // The old key alone (the key file) is now wrong: a clear start error.
    let out = run(&url, &[], &["serve", "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot decrypt the stored signing secrets")
            && stderr.contains(&new_id)
            && stderr.contains("--previous-secret-keys"),
        "{stderr}"
    );
    // So is a bad key value, named without being echoed.
    let out = run(&url, &["--secret-key", "c2hvcnQ="], &["project", "list"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("secret_key") && !stderr.contains("c2hvcnQ="),
        "{stderr}"
    );
}

#[test]
fn postgres_without_a_key_is_refused_naming_the_setting() {
    // Refused before any connection is tried (nothing listens on port 1).
    let out = run(
        "postgres://sendpromptly@127.0.0.1:1/none",
        &[],
        &["migrate"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PostgreSQL database needs a secret key")
            && stderr.contains("SENDPROMPTLY_SECRET_KEY"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_replayed_rotation_returns_its_secret_but_the_database_holds_only_ciphertext() {
    let server = sendpromptly_server::testing::TestServer::start().await;
    let api = server.api();
    let rotate = || {
        api.send(
            reqwest::Method::POST,
            "/v1/project/signing-secrets/rotate",
            None,
            &[("Idempotency-Key", "rotate-once")],
        )
    };
    let first = rotate().await;
    assert_eq!(first.status, 201, "{}", first.text);
    let secret = first.json["secret"]
        .as_str()
        .or_else(|| first.json["signing_secret"].as_str())
        .unwrap_or_else(|| panic!("{}", first.json))
        .to_owned();
    let replay = rotate().await;
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(
        replay.json, first.json,
        "the replay returns the same secret"
    );

    let pool = sqlx::SqlitePool::connect(&server.database_url)
        .await
        .unwrap();
    let responses: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT response FROM idempotency_keys WHERE response IS NOT NULL")
            .fetch_all(&pool)
            .await
            .unwrap();
    let stored: Vec<String> = sqlx::query_scalar("SELECT secret FROM signing_secrets")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(responses.len(), 1);
    let raw = secret.trim_start_matches("whsec_");
    for value in responses
        .iter()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .chain(stored)
    {
        assert!(value.starts_with("spenc1:"), "{value}");
        assert!(
            !value.contains(raw),
            "the new secret is stored in plaintext: {value}"
        );
    }
}
