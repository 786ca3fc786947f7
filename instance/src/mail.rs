//! Outgoing email through a database outbox.
//!
//! [`Mailer::enqueue`] writes one row per recipient and message; the worker started by
//! [`Mailer::spawn_worker`] sends due rows with lettre (SMTP when `smtp_url` is set, otherwise
//! `.eml` files in the data folder), marks them sent, and retries failures with exponential
//! backoff up to [`MAX_ATTEMPTS`]. A row is claimed before sending so that several instance
//! processes sharing one database do not send it twice.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sqlx::Row;
use tokio::sync::Notify;

use crate::config::Settings;
use crate::db::Db;

pub const MAX_ATTEMPTS: i64 = 8;
/// Messages handed to the transport at the same time.
pub const PARALLEL_SENDS: usize = 8;
/// How long a claimed row is left alone by other workers while it is being sent.
const CLAIM_SECONDS: i64 = 120;

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Folder(AsyncFileTransport<Tokio1Executor>, std::path::PathBuf),
}

#[derive(Clone)]
pub struct Mailer {
    db: Db,
    from: Mailbox,
    transport: Transport,
    wake: Arc<Notify>,
}

/// A claimed outbox row on its way out.
struct Outgoing {
    id: i64,
    recipient: String,
    subject: String,
    body: String,
    attempts: i64,
}

/// One outgoing message.
pub struct Email<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    /// What it is about (sign-in code, invitation, ...), for the delivery status page.
    pub kind: &'a str,
}

impl Mailer {
    pub fn new(settings: &Settings, db: Db) -> anyhow::Result<Self> {
        let from: Mailbox = settings
            .mail_from
            .parse()
            .with_context(|| format!("mail_from {:?} is not an address", settings.mail_from))?;
        let transport = match &settings.smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .context("smtp_url is not a valid SMTP URL")?
                    .timeout(Some(Duration::from_secs(20)))
                    .build(),
            ),
            None => {
                let folder = settings.mail_folder();
                std::fs::create_dir_all(&folder)
                    .with_context(|| format!("creating {}", folder.display()))?;
                Transport::Folder(AsyncFileTransport::new(&folder), folder)
            }
        };
        Ok(Self {
            db,
            from,
            transport,
            wake: Arc::new(Notify::new()),
        })
    }

    /// Where mail goes, for the startup log.
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Smtp(_) => "mail is sent over SMTP".to_string(),
            Transport::Folder(_, folder) => {
                format!("mail is written as .eml files to {}", folder.display())
            }
        }
    }

    /// Queues a message; it is sent by the worker shortly after.
    pub async fn enqueue(&self, email: Email<'_>) -> crate::error::Result<()> {
        let t = self.db.now();
        sqlx::query(
            "INSERT INTO email_outbox (recipient, subject, body, kind, created_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(email.to)
        .bind(email.subject)
        .bind(email.body)
        .bind(email.kind)
        .bind(t)
        .execute(&self.db.pool)
        .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Sends every due message once; returns how many were sent.
    ///
    /// Up to [`PARALLEL_SENDS`] messages are in flight at once over the transport's pooled
    /// connections: an SMTP exchange is mostly waiting on the network, so one at a time would
    /// leave a ballot mail-out to a thousand voters taking most of a minute.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut sent = 0;
        loop {
            let t = self.db.now();
            let rows = sqlx::query(
                "SELECT id, recipient, subject, body, attempts, next_attempt_at FROM email_outbox \
                 WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1 ORDER BY id LIMIT 50",
            )
            .bind(t)
            .fetch_all(&self.db.pool)
            .await?;
            if rows.is_empty() {
                return Ok(sent);
            }
            let mut claimed = Vec::with_capacity(rows.len());
            for row in rows {
                let id: i64 = row.try_get("id")?;
                let due: i64 = row.try_get("next_attempt_at")?;
                let taken = sqlx::query(
                    "UPDATE email_outbox SET next_attempt_at = $1 WHERE id = $2 AND next_attempt_at = $3 AND sent_at IS NULL",
                )
                .bind(t + CLAIM_SECONDS)
                .bind(id)
                .bind(due)
                .execute(&self.db.pool)
                .await?;
                if taken.rows_affected() == 1 {
                    claimed.push(Outgoing {
                        id,
                        recipient: row.try_get("recipient")?,
                        subject: row.try_get("subject")?,
                        body: row.try_get("body")?,
                        attempts: row.try_get("attempts")?,
                    });
                }
            }
            let results: Vec<anyhow::Result<bool>> = futures_util::stream::iter(claimed)
                .map(|message| self.deliver(message, t))
                .buffer_unordered(PARALLEL_SENDS)
                .collect()
                .await;
            for result in results {
                if result? {
                    sent += 1;
                }
            }
        }
    }

    /// Sends one claimed message and records the outcome; `Ok(true)` when it went out.
    async fn deliver(&self, message: Outgoing, claimed_at: i64) -> anyhow::Result<bool> {
        let Outgoing {
            id,
            recipient,
            subject,
            body,
            attempts,
        } = message;
        match self.send(&recipient, &subject, body).await {
            Ok(()) => {
                sqlx::query("UPDATE email_outbox SET sent_at = $1, attempts = attempts + 1, last_error = NULL WHERE id = $2")
                    .bind(self.db.now())
                    .bind(id)
                    .execute(&self.db.pool)
                    .await?;
                Ok(true)
            }
            Err(err) => {
                let attempts = attempts + 1;
                tracing::warn!(id, %recipient, attempts, error = %err, "sending mail failed");
                let (next, failed) = if attempts >= MAX_ATTEMPTS {
                    (claimed_at, Some(self.db.now()))
                } else {
                    (claimed_at + backoff(attempts), None)
                };
                sqlx::query(
                    "UPDATE email_outbox SET attempts = $1, next_attempt_at = $2, failed_at = $3, last_error = $4 WHERE id = $5",
                )
                .bind(attempts)
                .bind(next)
                .bind(failed)
                .bind(format!("{err:#}"))
                .bind(id)
                .execute(&self.db.pool)
                .await?;
                Ok(false)
            }
        }
    }

    async fn send(&self, to: &str, subject: &str, body: String) -> anyhow::Result<()> {
        let to: Mailbox = to.parse().context("recipient address")?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .context("building the message")?;
        match &self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(message).await.context("SMTP delivery")?;
            }
            Transport::Folder(files, folder) => {
                let id = files.send(message).await.context("writing the .eml file")?;
                tracing::info!(file = %folder.join(format!("{id}.eml")).display(), "mail written");
            }
        }
        Ok(())
    }

    /// Runs the outbox worker until `shutdown` fires.
    pub fn spawn_worker(&self, shutdown: crate::shutdown::Signal) -> tokio::task::JoinHandle<()> {
        let mailer = self.clone();
        tokio::spawn(async move {
            let mut shutdown = shutdown;
            loop {
                if let Err(err) = mailer.drain().await {
                    tracing::error!(error = %format!("{err:#}"), "mail outbox");
                }
                tokio::select! {
                    () = mailer.wake.notified() => {}
                    () = tokio::time::sleep(Duration::from_secs(15)) => {}
                    () = shutdown.wait() => break,
                }
            }
        })
    }

    /// Messages not yet sent (queued or retrying), for `/metrics`.
    pub async fn depth(&self) -> crate::error::Result<i64> {
        Ok(sqlx::query(
            "SELECT COUNT(*) AS n FROM email_outbox WHERE sent_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&self.db.pool)
        .await?
        .try_get("n")?)
    }
}

/// Seconds to wait after the `attempts`-th failure: 30 s, 1 min, 2 min, ... capped at 1 h.
fn backoff(attempts: i64) -> i64 {
    let exp = u32::try_from(attempts.clamp(1, 8) - 1).unwrap_or(0);
    (30_i64 << exp).min(3600)
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), 30);
        assert_eq!(backoff(2), 60);
        assert_eq!(backoff(3), 120);
        assert_eq!(backoff(8), 3600);
        assert_eq!(backoff(50), 3600);
    }
}
