//! Console users: accounts, memberships, one-time links, TOTP and recovery
//! codes — the writes that need more than one statement or the keyring.

use sendpromptly_core::Timestamp;
use sendpromptly_core::roles::Role;

use super::super::codec::{self, insert_error, ms};
use super::super::rows::RowExt;
use super::super::sql::Queries;
use super::super::sql::{self, args};
use super::super::{StoreError, StoreResult, TotpState, UserToken};
use super::{Backend, Engine};
use crate::secrets::totp_secret_context;

pub(super) async fn set_user_password<B: Backend>(
    engine: &Engine<B>,
    user_id: &str,
    password_hash: &str,
) -> StoreResult<()> {
    let mut tx = engine.backend.write().await?;
    let changed = B::Db::execute(
        &mut tx,
        sql::SET_USER_PASSWORD,
        args![user_id, password_hash],
    )
    .await?;
    if changed == 0 {
        return Err(StoreError::NotFound("user"));
    }
    B::Db::execute(&mut tx, sql::DELETE_USER_SESSIONS, args![user_id]).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn set_user_disabled<B: Backend>(
    engine: &Engine<B>,
    user_id: &str,
    at: Option<Timestamp>,
) -> StoreResult<()> {
    let mut tx = engine.backend.write().await?;
    let changed =
        B::Db::execute(&mut tx, sql::SET_USER_DISABLED, args![user_id, at.map(ms)]).await?;
    if changed == 0 {
        return Err(StoreError::NotFound("user"));
    }
    if at.is_some() {
        B::Db::execute(&mut tx, sql::DELETE_USER_SESSIONS, args![user_id]).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn delete_user<B: Backend>(engine: &Engine<B>, user_id: &str) -> StoreResult<()> {
    let mut tx = engine.backend.write().await?;
    for statement in [
        sql::DELETE_USER_SESSIONS,
        sql::DELETE_USER_MEMBERS,
        sql::DELETE_USER_TOKENS,
        sql::DELETE_USER_RECOVERY_CODES,
    ] {
        B::Db::execute(&mut tx, statement, args![user_id]).await?;
    }
    if B::Db::execute(&mut tx, sql::DELETE_USER, args![user_id]).await? == 0 {
        return Err(StoreError::NotFound("user"));
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn set_member<B: Backend>(
    engine: &Engine<B>,
    project_id: &str,
    user_id: &str,
    role: Option<Role>,
    now: Timestamp,
) -> StoreResult<()> {
    let result = match role {
        Some(role) => {
            let row = args![project_id, user_id, role.as_str(), ms(now)];
            engine.backend.write_one(sql::UPSERT_MEMBER, row).await
        }
        None => {
            engine
                .backend
                .write_one(sql::DELETE_MEMBER, args![project_id, user_id])
                .await
        }
    };
    result.map_err(|e| insert_error(e, "this membership exists", "project or user"))?;
    Ok(())
}

pub(super) fn role(row: &impl RowExt) -> StoreResult<Role> {
    let text = row.text("role")?;
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown role `{text}` in project_members")))
}

pub(super) async fn take_user_token<B: Backend>(
    engine: &Engine<B>,
    kind: &str,
    token_hash: &[u8],
    now: Timestamp,
) -> StoreResult<Option<String>> {
    let mut tx = engine.backend.write().await?;
    let Some(row) =
        B::Db::fetch_optional(&mut tx, sql::USER_TOKEN, args![token_hash, kind, ms(now)]).await?
    else {
        return Ok(None);
    };
    let user_id = row.text("user_id")?;
    if B::Db::execute(&mut tx, sql::USE_USER_TOKEN, args![token_hash, ms(now)]).await? != 1 {
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some(user_id))
}

pub(super) async fn create_user_token<B: Backend>(
    engine: &Engine<B>,
    token: UserToken,
) -> StoreResult<()> {
    let row = args![
        &token.token_hash,
        &token.user_id,
        &token.kind,
        ms(token.created_at),
        ms(token.expires_at)
    ];
    engine
        .backend
        .write_one(sql::INSERT_USER_TOKEN, row)
        .await
        .map_err(|e| insert_error(e, "this link token is already used", "user"))?;
    Ok(())
}

pub(super) async fn user_totp<B: Backend>(
    engine: &Engine<B>,
    user_id: &str,
) -> StoreResult<Option<TotpState>> {
    let Some(row) = engine.read_optional(sql::USER_TOTP, args![user_id]).await? else {
        return Err(StoreError::NotFound("user"));
    };
    let Some(sealed) = row.opt_text("totp_secret")? else {
        return Ok(None);
    };
    let keyring = engine.keyring()?;
    let secret = keyring.open(&totp_secret_context(user_id), &sealed)?;
    Ok(Some(TotpState {
        secret,
        enabled: row.boolean("totp_enabled")?,
        last_step: row.opt_int("totp_last_step")?,
    }))
}

pub(super) async fn set_user_totp<B: Backend>(
    engine: &Engine<B>,
    user_id: &str,
    secret: Option<&[u8]>,
    enabled: bool,
) -> StoreResult<()> {
    let sealed = match secret {
        Some(secret) => Some(
            engine
                .keyring()?
                .seal(&totp_secret_context(user_id), secret),
        ),
        None => None,
    };
    let changed = engine
        .backend
        .write_one(
            sql::SET_USER_TOTP,
            args![user_id, sealed.as_deref(), enabled && secret.is_some()],
        )
        .await?;
    if changed == 0 {
        return Err(StoreError::NotFound("user"));
    }
    Ok(())
}

pub(super) async fn replace_recovery_codes<B: Backend>(
    engine: &Engine<B>,
    user_id: &str,
    hashes: Vec<Vec<u8>>,
) -> StoreResult<()> {
    let mut tx = engine.backend.write().await?;
    B::Db::execute(&mut tx, sql::DELETE_USER_RECOVERY_CODES, args![user_id]).await?;
    for hash in &hashes {
        B::Db::execute(
            &mut tx,
            sql::INSERT_RECOVERY_CODE,
            args![user_id, hash.as_slice()],
        )
        .await
        .map_err(|e| insert_error(e, "a recovery code repeats", "user"))?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) fn count(row: &impl RowExt) -> StoreResult<u64> {
    Ok(codec::to_u64(row.int("n")?))
}
