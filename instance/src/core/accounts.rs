//! Signing up and signing in by emailed code.
//!
//! Both answer every address alike, whether a Passport uses it or not: the same redirect, the
//! same limits, a mail either way (a code, or a note that explains). Mail is limited per
//! address, per client and for the whole instance ([`MAILS_PER_ADDRESS`] and friends an
//! hour), so the forms cannot tell who has a Passport here and cannot be used to flood
//! someone's inbox.

use sqlx::Row;

use super::Core;
use crate::domain::auth::{self, CodePurpose};
use crate::domain::passports;
use crate::domain::values::{DisplayName, Email, Handle};
use crate::error::{AppError, Result};
use crate::mail;

/// Sign-in and sign-up mails one address receives in an hour at most.
pub const MAILS_PER_ADDRESS: i64 = 5;
/// Sign-in and sign-up mails one client may cause in an hour.
pub const MAILS_PER_CLIENT: i64 = 20;
/// Sign-in and sign-up mails the instance sends in an hour at most.
pub const MAILS_PER_INSTANCE: i64 = 1000;
const WINDOW: i64 = 3600;

/// The Passport's display name becomes `name`; its public actor shows it at once.
pub async fn rename(core: &Core, passport_id: i64, name: &DisplayName) -> Result<()> {
    passports::rename(&core.db, passport_id, name).await?;
    core.changed();
    Ok(())
}

/// Emails a sign-in code to `email` if a Passport uses it, and otherwise a note on how to
/// sign up; the caller cannot tell which.
pub async fn request_sign_in(core: &Core, email: &Email, client_key: &str) -> Result<()> {
    allow_mail(core, email, client_key).await?;
    let settings = &core.settings;
    match passports::by_email(&core.db, email).await? {
        Some(_) => {
            let code = auth::issue_code(&core.db, email, &CodePurpose::SignIn).await?;
            send_code(core, email, &code, "Here is your code to sign in.").await
        }
        None => {
            let link = settings.url(&convene_web::routes::signup_with_email(email.as_str()));
            let body = format!(
                "Hello,\n\nSomeone asked to sign in to {} with this address, but no Passport uses it.\n\
                 To create one, go to:\n{link}\n\nIf it was not you, ignore this email.\n",
                settings.instance_name
            );
            core.mailer
                .enqueue(mail::Email {
                    to: email.as_str(),
                    subject: &format!("Signing in to {}", settings.instance_name),
                    body: &body,
                    kind: "signin-unknown",
                })
                .await
        }
    }
}

/// Emails a sign-up code for a new Passport `@handle`, or, when the address already has a
/// Passport, a note saying so (the form answers the same either way). A taken handle is
/// refused: handles are public anyway.
pub async fn request_sign_up(
    core: &Core,
    email: &Email,
    handle: &Handle,
    display_name: &DisplayName,
    client_key: &str,
) -> Result<()> {
    passports::check_handle_available(&core.db, handle).await?;
    allow_mail(core, email, client_key).await?;
    let settings = &core.settings;
    if passports::by_email(&core.db, email).await?.is_some() {
        let link = settings.url(&convene_web::routes::signin_with_email(email.as_str()));
        let body = format!(
            "Hello,\n\nSomeone asked to create a Passport on {} with this address, but you \
             already have one. Sign in instead:\n{link}\n\nIf it was not you, ignore this email.\n",
            settings.instance_name
        );
        return core
            .mailer
            .enqueue(mail::Email {
                to: email.as_str(),
                subject: &format!("You already have a Passport on {}", settings.instance_name),
                body: &body,
                kind: "signup-existing",
            })
            .await;
    }
    let purpose = CodePurpose::SignUp {
        handle: handle.clone(),
        display_name: display_name.clone(),
    };
    let code = auth::issue_code(&core.db, email, &purpose).await?;
    let intro = format!(
        "Welcome! Your new Passport will be @{handle}@{}.",
        settings.domain()
    );
    send_code(core, email, &code, &intro).await
}

/// Counts one more sign-in mail to `email` caused by `client_key`, or refuses it when the
/// address, the client or the instance has had its share this hour.
async fn allow_mail(core: &Core, email: &Email, client_key: &str) -> Result<()> {
    let now = core.db.now();
    let since = now - WINDOW;
    let row = sqlx::query(
        "SELECT \
           (SELECT COUNT(*) FROM sign_in_mails WHERE email = $1 AND sent_at > $3) AS to_address, \
           (SELECT COUNT(*) FROM sign_in_mails WHERE client_key = $2 AND sent_at > $3) AS from_client, \
           (SELECT COUNT(*) FROM sign_in_mails WHERE sent_at > $3) AS everyone",
    )
    .bind(email.as_str())
    .bind(client_key)
    .bind(since)
    .fetch_one(&core.db.pool)
    .await?;
    let to_address: i64 = row.try_get("to_address")?;
    let from_client: i64 = row.try_get("from_client")?;
    let everyone: i64 = row.try_get("everyone")?;
    if to_address >= MAILS_PER_ADDRESS
        || from_client >= MAILS_PER_CLIENT
        || everyone >= MAILS_PER_INSTANCE
    {
        return Err(AppError::RateLimited {
            retry_after: u64::try_from(WINDOW).unwrap_or(3600),
        });
    }
    sqlx::query("INSERT INTO sign_in_mails (email, client_key, sent_at) VALUES ($1, $2, $3)")
        .bind(email.as_str())
        .bind(client_key)
        .bind(now)
        .execute(&core.db.pool)
        .await?;
    Ok(())
}

/// Forgets counted mails older than the window; run by housekeeping.
pub async fn sweep(db: &crate::db::Db) -> Result<()> {
    sqlx::query("DELETE FROM sign_in_mails WHERE sent_at < $1")
        .bind(db.now() - WINDOW)
        .execute(&db.pool)
        .await?;
    Ok(())
}

async fn send_code(core: &Core, email: &Email, code: &str, intro: &str) -> Result<()> {
    let settings = &core.settings;
    let link = settings.url(&convene_web::routes::verify_with_code(email.as_str(), code));
    core.mailer
        .enqueue(mail::Email {
            to: email.as_str(),
            subject: &format!("{code} is your {} code", settings.instance_name),
            body: &format!(
                "Hello,\n\n{intro}\n\nYour code: {code}\n\nOr open this link:\n{link}\n\n\
                 The code works once, for 15 minutes. If you did not ask for it, ignore this email.\n"
            ),
            kind: "code",
        })
        .await
}
