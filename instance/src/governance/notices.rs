//! The emails of an election, through the instance's job queue: one mail job per recipient and
//! notice, written with [`crate::mail::Mailer::enqueue_in`], sent once and retried by the worker.
//!
//! Each job's tag is `election:{id}:{notice}` (nominations, nomination, candidates, ballot,
//! receipt, reminder, results), which is how the delivery status for stewards is counted.
//! Notices that go to a whole roll are queued in the same transaction that marks them sent on
//! the election, so a notice goes out once even when two requests race to send it.
//!
//! Ballot links, reminders (which carry a fresh link) and receipts are secrets that would tie a
//! voter to a ballot or let someone vote in their place. The queue clears every job's text when
//! it is sent, and at the close those still waiting are given up and cleared too.

use serde::Serialize;
use sqlx::Row;

use super::Tx;
use super::elections::{self, Candidate, Election};
use super::roll;
use crate::core::Core;
use crate::db::Db;
use crate::domain::passports::Passport;
use crate::error::Result;
use crate::mail::Email;

/// The notices, in the order an election sends them, with their names for people.
pub const NOTICES: &[(&str, &str)] = &[
    ("nominations", "Nominations open"),
    ("nomination", "Nomination received / accepted"),
    ("candidates", "Candidate list"),
    ("ballot", "Ballot link"),
    ("receipt", "Vote received"),
    ("reminder", "Reminder"),
    ("results", "Results"),
];

/// The mail tag of an election's notice (how its delivery is counted).
pub fn kind(election_id: i64, notice: &str) -> String {
    format!("election:{election_id}:{notice}")
}

/// Claims a once-only notice by setting its column; false if already sent.
async fn claim(tx: &mut Tx, now: i64, election_id: i64, column: &'static str) -> Result<bool> {
    let sql = format!("UPDATE elections SET {column} = $1 WHERE id = $2 AND {column} IS NULL");
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(election_id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

fn when(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%-d %B %Y, %H:%M UTC").to_string())
        .unwrap_or_default()
}

fn footer(state: &Core) -> String {
    format!(
        "\n-- \n{} · {}\n",
        state.settings.instance_name,
        state.settings.url(convene_web::routes::GOVERNANCE)
    )
}

/// Queues one message to each of `voters` in `tx`, then commits it (and wakes the worker).
async fn mail_everyone(
    state: &Core,
    mut tx: Tx,
    voters: &[roll::Voter],
    subject: &str,
    body: &str,
    kind: &str,
) -> Result<()> {
    for v in voters {
        state
            .mailer
            .enqueue_in(
                &mut tx,
                Email {
                    to: &v.email,
                    subject,
                    body,
                    kind,
                },
            )
            .await?;
    }
    state.queue.commit(tx).await?;
    Ok(())
}

/// "Nominations are open" to everyone on the roll.
pub async fn nominations_open(state: &Core, election: &Election) -> Result<()> {
    let voters = roll::eligible(&state.db, election.constituency).await?;
    let mut tx: Tx = state.db.begin_write().await?;
    if !claim(
        &mut tx,
        state.db.now(),
        election.id,
        "nominations_notice_at",
    )
    .await?
    {
        return Ok(());
    }
    let subject = format!("Nominations are open: {}", election.title);
    let link = state.settings.url(&election.path());
    let body = format!(
        "Hello,\n\nNominations are open for \u{201c}{}\u{201d}, an election of {} {} \
         Representative(s) to the Circle of Stewards of {}.\n\n\
         You are on the {} roll. You may stand yourself or nominate someone else on the roll, \
         with a short statement, until {}.\n\nVoting runs from {} to {}.\n\n{link}\n{}",
        election.title,
        election.seats,
        election.constituency,
        state.settings.instance_name,
        election.constituency,
        when(election.nominations_close_at),
        when(election.voting_open_at),
        when(election.voting_close_at),
        footer(state),
    );
    mail_everyone(
        state,
        tx,
        &voters,
        &subject,
        &body,
        &kind(election.id, "nominations"),
    )
    .await
}

/// The list of candidates, to everyone on the roll, when nominations close.
pub async fn candidate_list(state: &Core, election: &Election) -> Result<()> {
    let voters = roll::eligible(&state.db, election.constituency).await?;
    let standing: Vec<Candidate> = elections::candidates(&state.db, election.id)
        .await?
        .into_iter()
        .filter(Candidate::standing)
        .collect();
    let mut tx: Tx = state.db.begin_write().await?;
    if !claim(&mut tx, state.db.now(), election.id, "candidates_notice_at").await? {
        return Ok(());
    }
    let subject = format!("Candidates: {}", election.title);
    let list = if standing.is_empty() {
        "Nobody stood, so the election will not go ahead.\n".to_string()
    } else {
        standing
            .iter()
            .map(|c| format!("- {}\n", c.ballot_name()))
            .collect::<String>()
    };
    let body = format!(
        "Hello,\n\nNominations for \u{201c}{}\u{201d} have closed. The candidates are:\n\n{list}\n\
         Read their statements here:\n{}\n\nVoting opens {} and closes {}. Your ballot link will \
         come by email when voting opens.\n{}",
        election.title,
        state.settings.url(&election.path()),
        when(election.voting_open_at),
        when(election.voting_close_at),
        footer(state),
    );
    mail_everyone(
        state,
        tx,
        &voters,
        &subject,
        &body,
        &kind(election.id, "candidates"),
    )
    .await
}

/// Tells the candidate (and the nominator, if someone else) that a nomination arrived.
pub async fn nomination_received(
    state: &Core,
    election: &Election,
    candidate: &Passport,
    by: &Passport,
    own: bool,
) -> Result<()> {
    let link = state.settings.url(&election.path());
    let k = kind(election.id, "nomination");
    let mut tx: Tx = state.db.begin_write().await?;
    if let Some(email) = &candidate.email {
        let body = if own {
            format!(
                "Hello {},\n\nYour nomination in \u{201c}{}\u{201d} is received: you are a candidate. \
                 You can withdraw on the election's page until it closes.\n\n{link}\n{}",
                candidate.display_name,
                election.title,
                footer(state)
            )
        } else {
            format!(
                "Hello {},\n\n{} (@{}) nominated you in \u{201c}{}\u{201d}. To stand, accept the \
                 nomination on the election's page before {}, and add your statement.\n\n{link}\n{}",
                candidate.display_name,
                by.display_name,
                by.handle,
                election.title,
                when(election.nominations_close_at),
                footer(state)
            )
        };
        state
            .mailer
            .enqueue_in(
                &mut tx,
                Email {
                    to: email.as_str(),
                    subject: &format!("Nomination received: {}", election.title),
                    body: &body,
                    kind: &k,
                },
            )
            .await?;
    }
    if !own && let Some(email) = &by.email {
        let body = format!(
            "Hello {},\n\nYour nomination of {} (@{}) in \u{201c}{}\u{201d} is received. They \
             stand once they accept it.\n\n{link}\n{}",
            by.display_name,
            candidate.display_name,
            candidate.handle,
            election.title,
            footer(state)
        );
        state
            .mailer
            .enqueue_in(
                &mut tx,
                Email {
                    to: email.as_str(),
                    subject: &format!("Nomination received: {}", election.title),
                    body: &body,
                    kind: &k,
                },
            )
            .await?;
    }
    state.queue.commit(tx).await?;
    Ok(())
}

/// Tells the candidate and their nominator that the nomination was accepted.
pub async fn nomination_accepted(
    state: &Core,
    election: &Election,
    candidate: &Candidate,
) -> Result<()> {
    let k = kind(election.id, "nomination");
    let link = state.settings.url(&election.path());
    let mut ids = vec![candidate.passport_id];
    ids.extend(
        candidate
            .nominated_by_id
            .filter(|&id| id != candidate.passport_id),
    );
    let mut tx: Tx = state.db.begin_write().await?;
    for id in ids {
        let Some(p) = crate::domain::passports::by_id(&state.db, id).await? else {
            continue;
        };
        let Some(email) = &p.email else { continue };
        let body = format!(
            "Hello {},\n\n{} accepted the nomination in \u{201c}{}\u{201d} and is a candidate.\n\n{link}\n{}",
            p.display_name,
            candidate.ballot_name(),
            election.title,
            footer(state)
        );
        state
            .mailer
            .enqueue_in(
                &mut tx,
                Email {
                    to: email.as_str(),
                    subject: &format!("Nomination accepted: {}", election.title),
                    body: &body,
                    kind: &k,
                },
            )
            .await?;
    }
    state.queue.commit(tx).await?;
    Ok(())
}

/// The ballot link (or a reminder carrying a fresh one).
pub(crate) fn ballot_body(
    state: &Core,
    election: &Election,
    name: &str,
    link: &str,
    reminder: bool,
) -> (String, String) {
    let subject = if reminder {
        format!("Reminder: vote in {}", election.title)
    } else {
        format!("Your ballot: {}", election.title)
    };
    let intro = if reminder {
        "You have not voted yet. Here is a new ballot link; the one sent before no longer works."
    } else {
        "Voting is open. This is your personal ballot link; it works once. Do not forward it."
    };
    let body = format!(
        "Hello {name},\n\n{intro}\n\n\u{201c}{}\u{201d} ({} seat(s), counted by {}). Voting closes {}.\n\n\
         {link}\n\nYour ballot is secret: the instance stores it with a random receipt code, not \
         with your name.\n{}",
        election.title,
        election.seats,
        election.method.long_name(),
        when(election.voting_close_at),
        footer(state)
    );
    (subject, body)
}

/// The results, to everyone on the frozen roll.
pub(crate) async fn results(
    tx: &mut Tx,
    state: &Core,
    election: &Election,
    summary: &str,
) -> Result<()> {
    let rows = sqlx::query(
        "SELECT r.email, p.display_name FROM election_roll r JOIN passports p ON p.id = r.passport_id \
         WHERE r.election_id = $1 ORDER BY r.passport_id",
    )
    .bind(election.id)
    .fetch_all(&mut **tx)
    .await?;
    let subject = format!("Results: {}", election.title);
    let link = state
        .settings
        .url(&convene_web::routes::result(election.id));
    let k = kind(election.id, "results");
    for r in rows {
        let email: String = r.try_get("email")?;
        let name: String = r.try_get("display_name")?;
        let body = format!(
            "Hello {name},\n\nVoting in \u{201c}{}\u{201d} has closed and the ballots are counted.\n\n{summary}\n\n\
             Every round of the count, the list of receipts and the anonymised ballots are here:\n{link}\n{}",
            election.title,
            footer(state)
        );
        state
            .mailer
            .enqueue_in(
                tx,
                Email {
                    to: &email,
                    subject: &subject,
                    body: &body,
                    kind: &k,
                },
            )
            .await?;
    }
    Ok(())
}

/// Delivery counts of one notice of an election.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub notice: &'static str,
    pub label: &'static str,
    pub sent: i64,
    pub pending: i64,
    pub failed: i64,
}

/// Sent, pending and failed counts per notice of an election, from the job queue.
pub async fn delivery(db: &Db, election_id: i64) -> Result<Vec<Delivery>> {
    let mut out = Vec::new();
    for &(notice, label) in NOTICES {
        let (sent, pending, failed) =
            crate::jobs::status::tag_counts(db, &kind(election_id, notice)).await?;
        out.push(Delivery {
            notice,
            label,
            sent,
            pending,
            failed,
        });
    }
    Ok(out)
}

/// At the close: gives up on the secret-bearing messages of the election not yet sent (their
/// links no longer work, and a late receipt would only be a risk) and clears the text of all
/// of them. Sent ones kept no text already: the queue clears a job's payload when it is done.
pub(crate) async fn scrub_election(tx: &mut Tx, now: i64, election_id: i64) -> Result<()> {
    for notice in ["ballot", "reminder", "receipt"] {
        crate::jobs::cancel_tagged(
            tx,
            now,
            &kind(election_id, notice),
            "voting closed before it was sent",
        )
        .await?;
    }
    Ok(())
}
