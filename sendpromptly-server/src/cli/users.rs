//! `sendpromptly user …`: console users and their roles, from the server
//! (the operator with database access may do anything). Every change goes
//! through [`crate::service::users`], as the console's Users page does.
//! One-time links (invitations, password resets) are printed: email may
//! not be configured, and the operator passes them on.

use clap::Subcommand;
use sendpromptly_core::Timestamp;
use sendpromptly_core::roles::Role;

use super::{CliError, read_password, resolve_project};
use crate::service::users::{self as user_service, By, Credential, OneTimeLink, UserChange};
use crate::store::Store;

/// `sendpromptly user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List console users with their status, 2FA and role per project.
    List {
        /// Only this project's members (name or `prj_` id).
        #[arg(long)]
        project: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a console user with a password (prompts for it when not given).
    /// Without --project the user becomes a member of every project.
    Create {
        /// Login email.
        #[arg(long)]
        email: String,
        /// Password (at least 10 characters); read from standard input if absent.
        #[arg(long, env = "SENDPROMPTLY_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// The project (name or `prj_` id); default: every project.
        #[arg(long)]
        project: Option<String>,
        /// viewer, operator or admin (default: viewer with --project,
        /// admin of every project without).
        #[arg(long)]
        role: Option<Role>,
    },
    /// Invite a user to a project: prints a one-time link (7 days) that
    /// lets them set their password.
    Invite {
        /// Login email.
        #[arg(long)]
        email: String,
        /// The project (name or `prj_` id).
        #[arg(long)]
        project: String,
        /// viewer, operator or admin.
        #[arg(long, default_value = "viewer")]
        role: Role,
        /// The console's address, to print a whole link.
        #[arg(long, env = "SENDPROMPTLY_PUBLIC_URL")]
        public_url: Option<String>,
    },
    /// Disable a user: every session of theirs ends at once.
    Disable {
        /// Email or `usr_` id.
        #[arg(long)]
        user: String,
    },
    /// Enable a disabled user.
    Enable {
        /// Email or `usr_` id.
        #[arg(long)]
        user: String,
    },
    /// Delete a user (sessions, memberships, 2FA).
    Delete {
        /// Email or `usr_` id.
        #[arg(long)]
        user: String,
    },
    /// Reset a password: the old one stops working, sessions end, and a
    /// one-time link (24 hours) is printed to set a new one.
    ResetPassword {
        /// Email or `usr_` id.
        #[arg(long)]
        user: String,
        /// The console's address, to print a whole link.
        #[arg(long, env = "SENDPROMPTLY_PUBLIC_URL")]
        public_url: Option<String>,
    },
    /// Set a user's role in a project (adds them), or --remove them from it.
    Role {
        /// Email or `usr_` id.
        #[arg(long)]
        user: String,
        /// The project (name or `prj_` id).
        #[arg(long)]
        project: String,
        /// viewer, operator or admin.
        #[arg(long, required_unless_present = "remove")]
        role: Option<Role>,
        /// Remove the user from the project instead.
        #[arg(long, conflicts_with = "role")]
        remove: bool,
    },
    /// Turn a user's two-factor sign-in off (a lost phone); they can enrol again.
    Reset2fa {
        /// Email or `usr_` id.
        #[arg(long)]
        user: String,
    },
}

/// Records a change in the audit log (actor `cli`).
async fn audited(store: &dyn Store, change: &UserChange, now: Timestamp) -> Result<(), CliError> {
    user_service::audit(store, change, None, now).await?;
    Ok(())
}

fn whole_link(link: &OneTimeLink, public_url: Option<&str>, file_url: Option<&str>) -> String {
    match public_url.or(file_url) {
        Some(base) => format!("{}{}", base.trim_end_matches('/'), link.path),
        None => format!(
            "{} (after the console's address; pass --public-url to print it whole)",
            link.path
        ),
    }
}

/// Runs `sendpromptly user …`.
pub async fn run(
    store: &dyn Store,
    command: UserCommand,
    file_public_url: Option<&str>,
    now: Timestamp,
) -> Result<(), CliError> {
    match command {
        UserCommand::List { project, json } => {
            let project = match project {
                Some(p) => Some(resolve_project(store, &p).await?),
                None => None,
            };
            let users = user_service::list(store, project.as_ref().map(|p| p.id.as_str())).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&users)?);
                return Ok(());
            }
            let projects = store.list_projects().await?;
            let name = |id: &str| {
                projects
                    .iter()
                    .find(|p| p.id == id)
                    .map_or(id.to_owned(), |p| p.name.clone())
            };
            for user in users {
                let roles = if user.owner {
                    "owner (admin of every project)".to_owned()
                } else {
                    user.roles
                        .iter()
                        .map(|(p, r)| format!("{}={r}", name(p)))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                println!(
                    "{}\t{}\t{}\t2fa={}\t{}",
                    user.id,
                    user.email,
                    user.status,
                    if user.totp { "on" } else { "off" },
                    if roles.is_empty() {
                        "no project".into()
                    } else {
                        roles
                    }
                );
            }
            Ok(())
        }
        UserCommand::Create {
            email,
            password,
            project,
            role,
        } => {
            let password = match password {
                Some(password) => password,
                None => read_password()?,
            };
            let targets = match &project {
                Some(p) => vec![resolve_project(store, p).await?],
                None => store.list_projects().await?,
            };
            let role = role.unwrap_or(if project.is_some() {
                Role::Viewer
            } else {
                Role::Admin
            });
            if targets.is_empty() {
                // No project yet: the account alone (the first one is the owner).
                let user =
                    crate::provision::new_user(store, &email, Some(&password), false, now).await?;
                println!("created console user {}", user.email);
                return Ok(());
            }
            for target in &targets {
                let (change, _) = user_service::create(
                    store,
                    By::Cli,
                    &target.id,
                    &email,
                    role,
                    Credential::Password(password.clone()),
                    now,
                )
                .await?;
                audited(store, &change, now).await?;
            }
            let names: Vec<&str> = targets.iter().map(|p| p.name.as_str()).collect();
            println!(
                "created console user {} ({role} of {})",
                email.trim().to_lowercase(),
                names.join(", ")
            );
            Ok(())
        }
        UserCommand::Invite {
            email,
            project,
            role,
            public_url,
        } => {
            let project = resolve_project(store, &project).await?;
            let (change, link) = user_service::create(
                store,
                By::Cli,
                &project.id,
                &email,
                role,
                Credential::Invite,
                now,
            )
            .await?;
            audited(store, &change, now).await?;
            match link {
                Some(link) => println!(
                    "invited {} as {role} of {}; send them this one-time link (until {}):\n{}",
                    email.trim().to_lowercase(),
                    project.name,
                    link.expires_at.to_rfc3339(),
                    whole_link(&link, public_url.as_deref(), file_public_url)
                ),
                None => println!(
                    "{} already has a password; added as {role} of {}",
                    email.trim().to_lowercase(),
                    project.name
                ),
            }
            Ok(())
        }
        UserCommand::Disable { user } => {
            let change = user_service::disable(store, By::Cli, &user, now).await?;
            audited(store, &change, now).await?;
            println!("disabled {user}: every session of theirs has ended");
            Ok(())
        }
        UserCommand::Enable { user } => {
            let change = user_service::enable(store, By::Cli, &user).await?;
            audited(store, &change, now).await?;
            println!("enabled {user}");
            Ok(())
        }
        UserCommand::Delete { user } => {
            let change = user_service::delete(store, By::Cli, &user).await?;
            audited(store, &change, now).await?;
            println!("deleted {user}");
            Ok(())
        }
        UserCommand::ResetPassword { user, public_url } => {
            let (change, link) = user_service::reset_password(store, By::Cli, &user, now).await?;
            audited(store, &change, now).await?;
            println!(
                "the password of {user} no longer works and their sessions have ended; send them this one-time link (until {}):\n{}",
                link.expires_at.to_rfc3339(),
                whole_link(&link, public_url.as_deref(), file_public_url)
            );
            Ok(())
        }
        UserCommand::Role {
            user,
            project,
            role,
            remove,
        } => {
            let project = resolve_project(store, &project).await?;
            if remove {
                let change =
                    user_service::remove_from_project(store, By::Cli, &project.id, &user, now)
                        .await?;
                audited(store, &change, now).await?;
                println!("removed {user} from {}", project.name);
                return Ok(());
            }
            let role = role.ok_or_else(|| CliError::new("give --role or --remove"))?;
            let target = user_service::find(store, &user).await?;
            let member = store
                .memberships(&target.id)
                .await?
                .iter()
                .any(|(p, _)| *p == project.id);
            let change = if member {
                user_service::set_role(store, By::Cli, &project.id, &user, role, now).await?
            } else {
                user_service::create(
                    store,
                    By::Cli,
                    &project.id,
                    &target.email,
                    role,
                    Credential::Invite,
                    now,
                )
                .await?
                .0
            };
            audited(store, &change, now).await?;
            println!("{user} is {role} of {}", project.name);
            Ok(())
        }
        UserCommand::Reset2fa { user } => {
            let change = user_service::totp_disable(store, By::Cli, &user).await?;
            audited(store, &change, now).await?;
            println!("two-factor sign-in of {user} is off");
            Ok(())
        }
    }
}
