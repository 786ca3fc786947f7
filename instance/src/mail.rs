//! Outgoing email, as jobs of kind [`KIND`] on the instance's [job queue](crate::jobs).
//!
//! [`Mailer::enqueue_in`] is the one way mail is written: one job per recipient and message,
//! inside the caller's transaction ([`Mailer::enqueue`] wraps it in a transaction of its own
//! for callers that have none). The queue's worker hands each job to the [`Mailer`]'s
//! [`Handler`] impl, which sends it with lettre: over SMTP when `smtp_url` is set, otherwise as
//! `.eml` files in the data folder.
//!
//! Each message's `Message-ID` is derived from its job's idempotency key, so a message sent
//! again after a worker died between "sent" and "marked sent" carries the same `Message-ID` and
//! the receiving side can tell it is a duplicate. SMTP answers map onto the queue's outcomes:
//! a permanent (5xx) refusal makes the job dead, anything else is retried and counts against
//! the SMTP server as a destination.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::future::BoxFuture;
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::config::Settings;
use crate::jobs::{self, Handler, Job, JobId, NewJob, Outcome, Queue, Tx, Worker};

/// The job kind of an email.
pub const KIND: &str = "mail";
/// Attempts before a message is given up (about a day and a half of backoff).
pub const MAX_ATTEMPTS: i64 = 8;

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Folder(AsyncFileTransport<Tokio1Executor>, std::path::PathBuf),
}

#[derive(Clone)]
pub struct Mailer {
    queue: Queue,
    from: Mailbox,
    transport: Transport,
    /// The destination of every mail job: the SMTP server, or the folder.
    destination: Arc<str>,
}

/// One outgoing message.
pub struct Email<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    /// What it is about (sign-in code, invitation, `election:3:ballot`, ...): the job's tag,
    /// which is how delivery is counted for the people who follow it.
    pub kind: &'a str,
}

/// A mail job's payload.
#[derive(Serialize, Deserialize)]
struct Payload {
    to: String,
    subject: String,
    body: String,
}

impl Mailer {
    pub fn new(settings: &Settings, queue: Queue) -> anyhow::Result<Self> {
        let from: Mailbox = settings
            .mail_from
            .parse()
            .with_context(|| format!("mail_from {:?} is not an address", settings.mail_from))?;
        let (transport, destination) = match &settings.smtp_url {
            Some(url) => (
                Transport::Smtp(
                    AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                        .context("smtp_url is not a valid SMTP URL")?
                        .timeout(Some(Duration::from_secs(20)))
                        .build(),
                ),
                smtp_destination(url),
            ),
            None => {
                let folder = settings.mail_folder();
                std::fs::create_dir_all(&folder)
                    .with_context(|| format!("creating {}", folder.display()))?;
                let destination = format!("folder:{}", folder.display());
                (
                    Transport::Folder(AsyncFileTransport::new(&folder), folder),
                    destination,
                )
            }
        };
        Ok(Self {
            queue,
            from,
            transport,
            destination: destination.into(),
        })
    }

    /// Where mail goes, for the startup log.
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Smtp(_) => format!("mail is sent over SMTP to {}", self.destination),
            Transport::Folder(_, folder) => {
                format!("mail is written as .eml files to {}", folder.display())
            }
        }
    }

    /// The destination mail jobs are queued for.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// Queues a message inside the caller's transaction: the one code path that writes mail.
    /// Commit with [`Queue::commit`] (or call [`Queue::wake`] after committing) so the worker
    /// starts on it at once; otherwise it goes within the queue's poll interval.
    pub async fn enqueue_in(
        &self,
        tx: &mut Tx<'_>,
        email: Email<'_>,
    ) -> crate::error::Result<JobId> {
        let payload = serde_json::to_string(&Payload {
            to: email.to.to_string(),
            subject: email.subject.to_string(),
            body: email.body.to_string(),
        })
        .map_err(anyhow::Error::from)?;
        // A fresh random key: every call is a new message. The key's job is to keep retries of
        // this one message recognisable (its Message-ID), not to merge separate messages.
        let key = format!("mail:{}", crate::domain::random_token());
        let id = jobs::enqueue(
            tx,
            self.queue.db().now(),
            &NewJob {
                kind: KIND,
                key: &key,
                destination: &self.destination,
                tag: email.kind,
                payload: &payload,
                max_attempts: MAX_ATTEMPTS,
            },
        )
        .await?;
        id.ok_or_else(|| anyhow::anyhow!("a fresh mail key was already queued").into())
    }

    /// Queues a message in a transaction of its own and wakes the worker.
    pub async fn enqueue(&self, email: Email<'_>) -> crate::error::Result<()> {
        let mut tx = self.queue.db().pool.begin().await?;
        self.enqueue_in(&mut tx, email).await?;
        self.queue.commit(tx).await
    }

    /// Sends every message that is due now; returns how many went out. Tests call it to send
    /// the queue's mail without waiting for the worker.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let worker = Worker::new(self.queue.clone()).handle(Arc::new(self.clone()));
        Ok(worker.drain().await?.done)
    }

    /// Points unsent mail at this process's mail destination: rows migrated from the old
    /// outbox have none, and after the SMTP settings change the old server is not where they
    /// will go.
    pub async fn adopt_pending(&self) -> crate::error::Result<u64> {
        let moved = sqlx::query(
            "UPDATE jobs SET destination = $1 WHERE kind = $2 AND state = 'pending' AND destination <> $1",
        )
        .bind(&*self.destination)
        .bind(KIND)
        .execute(&self.queue.db().pool)
        .await?;
        Ok(moved.rows_affected())
    }

    /// Messages not yet sent (queued or retrying), for `/metrics`.
    pub async fn depth(&self) -> crate::error::Result<i64> {
        jobs::status::depth(self.queue.db(), KIND).await
    }

    async fn deliver(&self, job: &Job) -> Outcome {
        let payload: Payload = match serde_json::from_str(&job.payload) {
            Ok(p) => p,
            Err(err) => return Outcome::Dead(format!("unreadable mail job: {err}")),
        };
        let message = match self.build(&job.key, payload) {
            Ok(m) => m,
            Err(err) => return Outcome::Dead(format!("{err:#}")),
        };
        match &self.transport {
            Transport::Smtp(smtp) => match smtp.send(message).await {
                Ok(_) => Outcome::Done,
                Err(err) if err.is_permanent() => Outcome::Dead(format!("SMTP refused it: {err}")),
                Err(err) => Outcome::Retry {
                    after: None,
                    error: format!("SMTP delivery: {err}"),
                },
            },
            Transport::Folder(files, folder) => match files.send(message).await {
                Ok(id) => {
                    tracing::info!(file = %folder.join(format!("{id}.eml")).display(), "mail written");
                    Outcome::Done
                }
                Err(err) => Outcome::Retry {
                    after: None,
                    error: format!("writing the .eml file: {err}"),
                },
            },
        }
    }

    fn build(&self, key: &str, payload: Payload) -> anyhow::Result<Message> {
        let to: Mailbox = payload.to.parse().context("recipient address")?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(payload.subject)
            .message_id(Some(message_id(key, self.from.email.domain())))
            .header(ContentType::TEXT_PLAIN)
            .body(payload.body)
            .context("building the message")
    }
}

impl Handler for Mailer {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn run<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Outcome> {
        Box::pin(self.deliver(job))
    }
}

/// The `Message-ID` of the message queued under `key`: the same for every attempt, different
/// for every job, and revealing nothing of the key.
pub fn message_id(key: &str, domain: &str) -> String {
    let digest = sha2::Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("<{hex}@{domain}>")
}

/// An SMTP URL as a destination name: scheme, host and port, without credentials or options.
fn smtp_destination(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("localhost");
            match u.port() {
                Some(port) => format!("{}://{host}:{port}", u.scheme()),
                None => format!("{}://{host}", u.scheme()),
            }
        }
        Err(_) => "smtp".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_stable_per_key_and_distinct_between_keys() {
        let a = message_id("mail:abc", "example.org");
        assert_eq!(a, message_id("mail:abc", "example.org"));
        assert_ne!(a, message_id("mail:abd", "example.org"));
        assert!(a.starts_with('<') && a.ends_with("@example.org>"), "{a}");
        assert!(!a.contains("abc"));
    }

    #[test]
    fn smtp_destinations_leave_out_credentials() {
        assert_eq!(
            smtp_destination("smtps://user:secret@mail.example.org:465?tls=required"),
            "smtps://mail.example.org:465"
        );
        assert_eq!(
            smtp_destination("smtp://127.0.0.1:2525"),
            "smtp://127.0.0.1:2525"
        );
        assert_eq!(smtp_destination("not a url"), "smtp");
    }
}
