//! Elections and nominations.
//!
//! An election has four times: nominations open, nominations close, voting opens, voting
//! closes. Its [`Phase`] follows from them and from `closed_at`, so tests and stewards move an
//! election along by changing times, and nothing needs a timer to be correct.
//!
//! Nominations: a person on the roll nominates themself (accepted at once) or someone else on
//! the roll (who accepts, with their statement). Both only while nominations are open. A person
//! stands in one constituency at a time: accepting a nomination is refused while they stand in an
//! election of the other constituency that has not closed, or hold a seat of the other one.

use convene_governance::Method;
use convene_governance::circle::Constituency;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Tx, constituency_key, notices, opt_flag, parse_constituency, roll};
use crate::core::Core;
use crate::db::Db;
use crate::domain::passports::{self, Passport};
use crate::domain::values::{Handle, parse_text};
use crate::error::{AppError, FieldError, Result, is_unique_violation};

/// Where an election stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Nominations have not opened yet.
    Upcoming,
    /// Nominations are open.
    Nominating,
    /// Nominations closed; voting has not opened.
    Waiting,
    /// Voting is open.
    Voting,
    /// Voting time is over; the count runs on the next visit.
    Counting,
    /// Closed and counted (or cancelled).
    Closed,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Self::Upcoming => "Upcoming",
            Self::Nominating => "Nominations open",
            Self::Waiting => "Nominations closed",
            Self::Voting => "Voting open",
            Self::Counting => "Counting",
            Self::Closed => "Closed",
        }
    }
}

/// An election as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Election {
    pub id: i64,
    pub title: String,
    pub constituency: Constituency,
    pub seats: i64,
    #[serde(serialize_with = "method_name")]
    pub method: Method,
    pub nominations_open_at: i64,
    pub nominations_close_at: i64,
    pub voting_open_at: i64,
    pub voting_close_at: i64,
    pub quorum_percent: i64,
    pub by_election: bool,
    /// The lot's seed, drawn and published when voting opens.
    pub seed: Option<u64>,
    pub roll_frozen_at: Option<i64>,
    pub roll_size: i64,
    pub ballots_cast: i64,
    pub closed_at: Option<i64>,
    pub quorum_met: Option<bool>,
    #[serde(skip)]
    pub result_json: Option<String>,
    #[serde(skip)]
    pub result_text: Option<String>,
    pub result_error: Option<String>,
    #[serde(skip)]
    pub nominations_notice_at: Option<i64>,
    #[serde(skip)]
    pub candidates_notice_at: Option<i64>,
    #[serde(skip)]
    pub auto_reminder_at: Option<i64>,
    pub created_at: i64,
}

fn method_name<S: serde::Serializer>(m: &Method, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

const COLUMNS: &str = "id, title, constituency, seats, method, nominations_open_at, nominations_close_at, \
    voting_open_at, voting_close_at, quorum_percent, by_election, seed, roll_frozen_at, roll_size, \
    ballots_cast, closed_at, quorum_met, result_json, result_text, result_error, \
    nominations_notice_at, candidates_notice_at, auto_reminder_at, created_at";

impl Election {
    fn from_row(r: &AnyRow) -> Result<Self> {
        let method: String = r.try_get("method")?;
        Ok(Self {
            id: r.try_get("id")?,
            title: r.try_get("title")?,
            constituency: parse_constituency(&r.try_get::<String, _>("constituency")?)?,
            seats: r.try_get("seats")?,
            method: method
                .parse()
                .map_err(|e| anyhow::anyhow!("stored election method: {e}"))?,
            nominations_open_at: r.try_get("nominations_open_at")?,
            nominations_close_at: r.try_get("nominations_close_at")?,
            voting_open_at: r.try_get("voting_open_at")?,
            voting_close_at: r.try_get("voting_close_at")?,
            quorum_percent: r.try_get("quorum_percent")?,
            by_election: r.try_get::<i64, _>("by_election")? != 0,
            seed: r
                .try_get::<Option<String>, _>("seed")?
                .and_then(|s| s.parse().ok()),
            roll_frozen_at: r.try_get("roll_frozen_at")?,
            roll_size: r.try_get("roll_size")?,
            ballots_cast: r.try_get("ballots_cast")?,
            closed_at: r.try_get("closed_at")?,
            quorum_met: opt_flag(r, "quorum_met")?,
            result_json: r.try_get("result_json")?,
            result_text: r.try_get("result_text")?,
            result_error: r.try_get("result_error")?,
            nominations_notice_at: r.try_get("nominations_notice_at")?,
            candidates_notice_at: r.try_get("candidates_notice_at")?,
            auto_reminder_at: r.try_get("auto_reminder_at")?,
            created_at: r.try_get("created_at")?,
        })
    }

    /// The phase at time `t`.
    pub fn phase(&self, t: i64) -> Phase {
        if self.closed_at.is_some() {
            Phase::Closed
        } else if t < self.nominations_open_at {
            Phase::Upcoming
        } else if t < self.nominations_close_at {
            Phase::Nominating
        } else if t < self.voting_open_at {
            Phase::Waiting
        } else if t < self.voting_close_at {
            Phase::Voting
        } else {
            Phase::Counting
        }
    }

    /// When the automatic reminder goes out: a day before voting closes, or halfway through
    /// a voting window shorter than two days.
    pub fn auto_reminder_due(&self) -> i64 {
        let window = (self.voting_close_at - self.voting_open_at).max(0);
        self.voting_close_at - (window / 2).min(24 * 3600)
    }

    /// Where the election's page is.
    pub fn path(&self) -> String {
        convene_web::routes::election(self.id)
    }
}

/// What a steward fills in to create an election.
#[derive(Debug, Clone)]
pub struct NewElection {
    pub title: String,
    pub constituency: String,
    pub seats: i64,
    pub method: String,
    pub nominations_open_at: i64,
    pub nominations_close_at: i64,
    pub voting_open_at: i64,
    pub voting_close_at: i64,
    pub quorum_percent: i64,
    pub by_election: bool,
}

/// Creates an election after checking every field; the caller has checked that `by` may.
pub async fn create(db: &Db, by: &Passport, new: &NewElection) -> Result<Election> {
    let mut errors = Vec::new();
    let mut bad = |field: &'static str, message: &str| {
        errors.push(FieldError {
            field,
            message: message.to_string(),
        })
    };
    let title = parse_text(&new.title, 120).unwrap_or_default();
    if title.is_empty() || title.contains('\n') {
        bad(
            "title",
            "Give the election a title of one line, up to 120 characters.",
        );
    }
    let constituency = parse_constituency(&new.constituency).ok();
    if constituency.is_none() {
        bad(
            "constituency",
            "Choose the Resident or the Worker constituency.",
        );
    }
    let method: Option<Method> = new.method.parse().ok();
    let circle_size = super::circle::size(db).await?;
    match method {
        None => bad("method", "Choose a counting method."),
        Some(Method::Irv) if new.seats != 1 => bad(
            "seats",
            "Instant-runoff fills one seat; choose STV or Meek STV for several.",
        ),
        Some(_) => {}
    }
    if new.seats < 1 || new.seats > circle_size {
        bad(
            "seats",
            &format!("Seats must be between 1 and {circle_size}, the seats per constituency."),
        );
    }
    if new.nominations_open_at >= new.nominations_close_at {
        bad(
            "nominations_close",
            "Nominations must close after they open.",
        );
    }
    if new.nominations_close_at > new.voting_open_at {
        bad(
            "voting_open",
            "Voting opens when nominations have closed, or later.",
        );
    }
    if new.voting_open_at >= new.voting_close_at {
        bad("voting_close", "Voting must close after it opens.");
    }
    if new.voting_close_at <= db.now() {
        bad("voting_close", "Voting must close in the future.");
    }
    if !(0..=100).contains(&new.quorum_percent) {
        bad("quorum", "The quorum is a percentage from 0 (none) to 100.");
    }
    let (Some(constituency), Some(method), true) = (constituency, method, errors.is_empty()) else {
        return Err(AppError::Invalid(errors));
    };
    let row = sqlx::query(
        "INSERT INTO elections (title, constituency, seats, method, nominations_open_at, nominations_close_at, \
         voting_open_at, voting_close_at, quorum_percent, by_election, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(&title)
    .bind(constituency_key(constituency))
    .bind(new.seats)
    .bind(method.as_str())
    .bind(new.nominations_open_at)
    .bind(new.nominations_close_at)
    .bind(new.voting_open_at)
    .bind(new.voting_close_at)
    .bind(new.quorum_percent)
    .bind(i64::from(new.by_election))
    .bind(by.id)
    .bind(db.now())
    .fetch_one(&db.pool)
    .await?;
    get(db, row.try_get("id")?).await
}

/// One election, or `NotFound`.
pub async fn get(db: &Db, id: i64) -> Result<Election> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM elections WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?
    .ok_or(AppError::NotFound)?;
    Election::from_row(&row)
}

/// Every election, newest first.
pub async fn list(db: &Db) -> Result<Vec<Election>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM elections ORDER BY id DESC"
    )))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(Election::from_row).collect()
}

/// A nomination with the people it names.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub nomination_id: i64,
    pub passport_id: i64,
    pub handle: String,
    pub display_name: String,
    pub statement: String,
    pub nominated_by: Option<String>,
    pub nominated_by_id: Option<i64>,
    pub accepted: bool,
    pub withdrawn: bool,
    /// The candidate's number on the ballot, from when voting opened.
    pub ballot_number: Option<i64>,
}

impl Candidate {
    /// The name on the ballot and in the BLT file: unique, because handles are.
    pub fn ballot_name(&self) -> String {
        format!("{} (@{})", self.display_name, self.handle)
    }

    /// Standing now: accepted and not withdrawn.
    pub fn standing(&self) -> bool {
        self.accepted && !self.withdrawn
    }
}

/// Every nomination of an election: ballot order once voting has opened, otherwise by name.
pub async fn candidates(db: &Db, election_id: i64) -> Result<Vec<Candidate>> {
    let rows = sqlx::query(
        "SELECT n.id, n.candidate_id, p.handle, p.display_name, n.statement, n.nominated_by, \
         b.handle AS by_handle, n.accepted_at, n.withdrawn_at, n.ballot_number \
         FROM nominations n JOIN passports p ON p.id = n.candidate_id \
         LEFT JOIN passports b ON b.id = n.nominated_by \
         WHERE n.election_id = $1 ORDER BY COALESCE(n.ballot_number, 1000000000), p.display_name, n.id",
    )
    .bind(election_id)
    .fetch_all(&db.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Candidate {
                nomination_id: r.try_get("id")?,
                passport_id: r.try_get("candidate_id")?,
                handle: r.try_get("handle")?,
                display_name: r.try_get("display_name")?,
                statement: r.try_get("statement")?,
                nominated_by: r.try_get("by_handle")?,
                nominated_by_id: r.try_get("nominated_by")?,
                accepted: r.try_get::<Option<i64>, _>("accepted_at")?.is_some(),
                withdrawn: r.try_get::<Option<i64>, _>("withdrawn_at")?.is_some(),
                ballot_number: r.try_get("ballot_number")?,
            })
        })
        .collect()
}

/// Refuses a candidacy if the person stands in, or sits for, the other constituency.
async fn check_one_constituency(db: &Db, election: &Election, passport_id: i64) -> Result<()> {
    let other = sqlx::query(
        "SELECT e.title FROM nominations n JOIN elections e ON e.id = n.election_id \
         WHERE n.candidate_id = $1 AND n.accepted_at IS NOT NULL AND n.withdrawn_at IS NULL \
         AND e.closed_at IS NULL AND e.constituency <> $2 AND e.id <> $3",
    )
    .bind(passport_id)
    .bind(constituency_key(election.constituency))
    .bind(election.id)
    .fetch_optional(&db.pool)
    .await?;
    if let Some(r) = other {
        let title: String = r.try_get("title")?;
        return Err(AppError::invalid(
            "handle",
            format!(
                "This person already stands in \u{201c}{title}\u{201d} for the other constituency; \
                 a person stands in one constituency at a time."
            ),
        ));
    }
    let seated: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM circle_seats WHERE passport_id = $1 AND constituency <> $2",
    )
    .bind(passport_id)
    .bind(constituency_key(election.constituency))
    .fetch_one(&db.pool)
    .await?
    .try_get("n")?;
    if seated > 0 {
        return Err(AppError::invalid(
            "handle",
            "This person holds a seat of the other constituency; a person holds one seat at most.",
        ));
    }
    Ok(())
}

fn statement(input: &str) -> Result<String> {
    parse_text(input, 2000).map_err(|e| AppError::invalid("statement", e.0))
}

fn require_nominating(election: &Election, now: i64) -> Result<()> {
    if election.phase(now) == Phase::Nominating {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "Nominations for this election are not open: they are taken only between the opening and closing times shown on the election's page.",
        ))
    }
}

/// Nominates `candidate` (a handle; empty for oneself) with a statement.
pub async fn nominate(
    state: &Core,
    election: &Election,
    by: &Passport,
    candidate: &str,
    statement_text: &str,
) -> Result<Candidate> {
    require_nominating(election, state.db.now())?;
    let statement = statement(statement_text)?;
    let wanted = candidate.trim().trim_start_matches('@');
    let candidate = if wanted.is_empty() || wanted == by.handle.as_str() {
        by.clone()
    } else {
        let handle = Handle::parse(wanted).map_err(|e| AppError::invalid("handle", e.0))?;
        passports::by_handle(&state.db, &handle)
            .await?
            .ok_or_else(|| {
                AppError::invalid("handle", format!("There is no Passport @{handle} here."))
            })?
    };
    let own = candidate.id == by.id;
    let c = election.constituency;
    if !roll::is_eligible(&state.db, c, candidate.id).await? {
        return Err(AppError::invalid(
            "handle",
            format!(
                "@{} is not on the {c} roll, so cannot stand in this election.",
                candidate.handle
            ),
        ));
    }
    if !own && !roll::is_eligible(&state.db, c, by.id).await? {
        return Err(AppError::Forbidden(
            "Only people on this election's roll may nominate others.",
        ));
    }
    if own {
        check_one_constituency(&state.db, election, candidate.id).await?;
    }
    let t = state.db.now();
    let inserted = sqlx::query(
        "INSERT INTO nominations (election_id, candidate_id, nominated_by, statement, accepted_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(election.id)
    .bind(candidate.id)
    .bind(by.id)
    .bind(&statement)
    .bind(own.then_some(t))
    .bind(t)
    .fetch_one(&state.db.pool)
    .await;
    match inserted {
        Ok(_) => {}
        Err(err) if is_unique_violation(&err) => {
            return Err(AppError::Conflict {
                field: "handle",
                message: format!(
                    "@{} is already nominated in this election.",
                    candidate.handle
                ),
            });
        }
        Err(err) => return Err(err.into()),
    }
    notices::nomination_received(state, election, &candidate, by, own).await?;
    find(&state.db, election.id, candidate.id).await
}

async fn find(db: &Db, election_id: i64, passport_id: i64) -> Result<Candidate> {
    candidates(db, election_id)
        .await?
        .into_iter()
        .find(|c| c.passport_id == passport_id)
        .ok_or(AppError::NotFound)
}

/// The candidate accepts a nomination by another, optionally replacing the statement.
pub async fn accept(
    state: &Core,
    election: &Election,
    nomination_id: i64,
    by: &Passport,
    statement_text: &str,
) -> Result<Candidate> {
    require_nominating(election, state.db.now())?;
    let candidate = own_nomination(&state.db, election, nomination_id, by).await?;
    if candidate.accepted {
        return Err(AppError::invalid("statement", "You have already accepted."));
    }
    if !roll::is_eligible(&state.db, election.constituency, by.id).await? {
        return Err(AppError::Forbidden(
            "You are no longer on this election's roll, so cannot stand.",
        ));
    }
    check_one_constituency(&state.db, election, by.id).await?;
    let statement = statement(statement_text)?;
    let mut tx: Tx = state.db.begin_write().await?;
    sqlx::query("UPDATE nominations SET accepted_at = $1 WHERE id = $2 AND accepted_at IS NULL")
        .bind(state.db.now())
        .bind(nomination_id)
        .execute(&mut *tx)
        .await?;
    if !statement.is_empty() {
        sqlx::query("UPDATE nominations SET statement = $1 WHERE id = $2")
            .bind(&statement)
            .bind(nomination_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    let candidate = find(&state.db, election.id, by.id).await?;
    notices::nomination_accepted(state, election, &candidate).await?;
    Ok(candidate)
}

/// The candidate withdraws (before the election closes). After voting has opened the
/// candidate stays on the ballot's numbering but is skipped in the count, as BLT's withdrawn
/// line does.
pub async fn withdraw(
    db: &Db,
    election: &Election,
    nomination_id: i64,
    by: &Passport,
) -> Result<()> {
    if election.closed_at.is_some() {
        return Err(AppError::Forbidden("This election is closed."));
    }
    let candidate = own_nomination(db, election, nomination_id, by).await?;
    if candidate.withdrawn {
        return Ok(());
    }
    sqlx::query("UPDATE nominations SET withdrawn_at = $1 WHERE id = $2 AND withdrawn_at IS NULL")
        .bind(db.now())
        .bind(nomination_id)
        .execute(&db.pool)
        .await?;
    Ok(())
}

async fn own_nomination(
    db: &Db,
    election: &Election,
    nomination_id: i64,
    by: &Passport,
) -> Result<Candidate> {
    let candidate = candidates(db, election.id)
        .await?
        .into_iter()
        .find(|c| c.nomination_id == nomination_id)
        .ok_or(AppError::NotFound)?;
    if candidate.passport_id != by.id {
        return Err(AppError::Forbidden("Only the candidate can do that."));
    }
    Ok(candidate)
}
