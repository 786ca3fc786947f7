//! Community ownership: the constituencies, the Circle of Stewards, elections with secret
//! ballots, motions on the Budget and the Objectives, and the email notices that go with them.
//!
//! The counting rules live in the pure `convene-governance` crate; this module stores what
//! they work on and decides who may do what:
//! - [`roll`]: who is a Resident (a local Passport with a verified email, old enough) and who a
//!   Worker (marked maintainer or contributor, every change in an audit log).
//! - [`circle`]: the seats, changed only through `convene_governance::circle::Circle` inside a
//!   transaction that checks the balance again before it commits.
//! - [`elections`]: creating elections and nominations; [`voting`]: freezing the roll, ballot
//!   links, casting and receipts, reminders; [`tally`]: closing, counting, publishing, seating
//!   the elected, the BLT export and countback.
//! - [`motions`]: the Circle's double-majority decisions on the Budget and the Objectives.
//! - [`notices`]: the emails, through the job queue, and their delivery status.
//!
//! Where to start: [`tick`], which every governance page runs first. Phase changes happen
//! lazily there (nominations open, candidate list, roll frozen, election closed and counted),
//! so an instance needs no clock-driven job for an election to move on; [`spawn_worker`] runs
//! the same step every minute for instances that want notices sent without a visit.
//!
//! Invariants:
//! - A ballot row carries a random receipt, the election and the ranking: no voter, no time.
//!   Casting flips the roll row's `voted` flag and inserts the ballot in one transaction guarded
//!   by `voted = 0`, so a ballot link counts once and a counted vote is never lost.
//! - The seed of the lot is drawn and published when voting opens, before any count.
//! - Emails that carry a ballot secret or a receipt have their text removed from the job queue
//!   once sent (the queue keeps no payload of a done job) and at the close, so the stored mail
//!   cannot link a voter to a ballot either.
//! - The Circle's rows hold as many Resident as Worker seats after every transaction.

pub mod circle;
pub mod elections;
pub mod motions;
pub mod notices;
pub mod roll;
pub mod tally;
pub mod voting;

use convene_governance::circle::Constituency;
use sqlx::Row;

use crate::core::Core;
use crate::db::Db;
use crate::domain::passports::Passport;
use crate::error::{AppError, Result};

/// A database transaction on the instance's pool.
pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// The stored name of a constituency.
pub fn constituency_key(c: Constituency) -> &'static str {
    match c {
        Constituency::Resident => "resident",
        Constituency::Worker => "worker",
    }
}

/// Reads a stored or submitted constituency name.
pub fn parse_constituency(s: &str) -> Result<Constituency> {
    match s.trim() {
        "resident" => Ok(Constituency::Resident),
        "worker" => Ok(Constituency::Worker),
        _ => Err(AppError::invalid(
            "constituency",
            "Choose the Resident or the Worker constituency.",
        )),
    }
}

/// True if the Passport holds a seat on the Circle.
pub async fn is_steward(db: &Db, passport_id: i64) -> Result<bool> {
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM circle_seats WHERE passport_id = $1")
        .bind(passport_id)
        .fetch_one(&db.pool)
        .await?
        .try_get("n")?;
    Ok(n > 0)
}

/// How many seats are filled.
pub async fn stewards_seated(db: &Db) -> Result<i64> {
    Ok(
        sqlx::query("SELECT COUNT(*) AS n FROM circle_seats WHERE passport_id IS NOT NULL")
            .fetch_one(&db.pool)
            .await?
            .try_get("n")?,
    )
}

/// Stewards run elections; operators do until the first steward is seated, so that an
/// instance can hold its founding election.
pub async fn may_run_elections(db: &Db, p: &Passport) -> Result<bool> {
    if is_steward(db, p.id).await? {
        return Ok(true);
    }
    Ok(p.is_operator && stewards_seated(db).await? == 0)
}

/// Operators and stewards mark Workers and size the Circle.
pub async fn may_set_roles(db: &Db, p: &Passport) -> Result<bool> {
    Ok(p.is_operator || is_steward(db, p.id).await?)
}

/// Moves every election along: sends the notices that are due, freezes rolls whose voting has
/// opened, and closes and counts elections whose voting has ended. Safe to run concurrently:
/// each step claims its work with a guarded update.
pub async fn tick(state: &Core) -> Result<()> {
    let t = state.db.now();
    let due = sqlx::query(
        "SELECT id FROM elections WHERE closed_at IS NULL AND nominations_open_at <= $1 ORDER BY id",
    )
    .bind(t)
    .fetch_all(&state.db.pool)
    .await?;
    for row in due {
        let id: i64 = row.try_get("id")?;
        let election = elections::get(&state.db, id).await?;
        if t >= election.nominations_open_at && election.nominations_notice_at.is_none() {
            notices::nominations_open(state, &election).await?;
        }
        if t >= election.nominations_close_at && election.candidates_notice_at.is_none() {
            notices::candidate_list(state, &election).await?;
        }
        if t >= election.voting_open_at && election.roll_frozen_at.is_none() {
            voting::freeze(state, &election).await?;
        }
        let election = elections::get(&state.db, id).await?;
        if election.closed_at.is_none() && election.roll_frozen_at.is_some() {
            if t >= election.voting_close_at {
                tally::close(state, &election).await?;
            } else if election.auto_reminder_at.is_none() && t >= election.auto_reminder_due() {
                voting::auto_remind(state, &election).await?;
            }
        }
    }
    Ok(())
}

/// Runs [`tick`] every minute until `shutdown` fires, for instances that want notices and
/// counts to happen on time even when nobody visits the governance pages.
pub fn spawn_worker(
    state: Core,
    mut shutdown: crate::shutdown::Signal,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(err) = tick(&state).await {
                tracing::warn!(error = %err, "governance: moving elections along");
            }
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
                () = shutdown.wait() => break,
            }
        }
    })
}

/// Reads a 0/1 flag column that may be NULL.
fn opt_flag(
    row: &sqlx::any::AnyRow,
    column: &str,
) -> std::result::Result<Option<bool>, sqlx::Error> {
    Ok(row.try_get::<Option<i64>, _>(column)?.map(|v| v != 0))
}
