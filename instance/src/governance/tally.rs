//! Closing an election: counting, publishing, seating the elected; the BLT export; countback.
//!
//! The close runs in one transaction: it marks the election closed (which waits for any cast
//! in flight, see [`super::voting`]), reads the ballots, rewrites them in receipt order and
//! touches every roll row (so that on PostgreSQL neither the physical order of the rows nor
//! their transaction ids line a ballot up with a voter), counts with the seed published when
//! voting opened, checks the quorum, seats the elected through the Circle, scrubs the secrets
//! from the mail queue and queues the results notice.

use convene_governance::circle::Constituency;
use convene_governance::{Ballot, Method, Outcome, blt, count};
use sqlx::Row;

use super::circle;
use super::elections::{self, Candidate, Election, Phase};
use super::{Tx, constituency_key, notices, roll};
use crate::core::Core;
use crate::db::Db;
use crate::error::{AppError, Result};

/// Builds the counting core's election from the stored candidates and rankings.
pub fn build(
    title: &str,
    candidates: &[Candidate],
    rankings: &[String],
    seats: usize,
) -> std::result::Result<convene_governance::Election, convene_governance::Error> {
    let on_ballot: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.ballot_number.is_some())
        .collect();
    let names: Vec<String> = on_ballot.iter().map(|c| c.ballot_name()).collect();
    let index_of = |n: i64| on_ballot.iter().position(|c| c.ballot_number == Some(n));
    let mut ballots = Vec::with_capacity(rankings.len());
    for (i, ranking) in rankings.iter().enumerate() {
        let mut order = Vec::new();
        for part in ranking.split_ascii_whitespace() {
            let idx = part.parse::<i64>().ok().and_then(index_of).ok_or_else(|| {
                convene_governance::Error::Ballot {
                    ballot: i,
                    message: format!("stored ranking {ranking:?} names no candidate on the ballot"),
                }
            })?;
            order.push(idx);
        }
        ballots.push(Ballot::ranked(&order));
    }
    let withdrawn: Vec<usize> = on_ballot
        .iter()
        .enumerate()
        .filter(|(_, c)| c.withdrawn)
        .map(|(i, _)| i)
        .collect();
    Ok(convene_governance::Election::new(title, names, ballots)?
        .with_withdrawn(&withdrawn)?
        .with_seats(seats))
}

async fn rankings(db: &Db, election_id: i64) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT ranking FROM ballots WHERE election_id = $1 ORDER BY receipt")
        .bind(election_id)
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<String, _>("ranking")?))
        .collect()
}

fn seats_of(election: &Election) -> usize {
    usize::try_from(election.seats).unwrap_or(1)
}

/// Closes and counts an election whose voting time is over. Does nothing if it is already
/// closed (another request got there first); refused while voting is still open.
pub async fn close(state: &Core, election: &Election) -> Result<()> {
    let t = state.db.now();
    match election.phase(t) {
        Phase::Counting => {}
        Phase::Closed => return Ok(()),
        _ => {
            return Err(AppError::Forbidden(
                "An election is closed only when its voting time is over.",
            ));
        }
    }
    let candidates = elections::candidates(&state.db, election.id).await?;
    let mut tx: Tx = state.db.begin_write().await?;
    let claimed = sqlx::query(
        "UPDATE elections SET closed_at = $1 WHERE id = $2 AND closed_at IS NULL \
         AND roll_frozen_at IS NOT NULL AND voting_close_at <= $1",
    )
    .bind(t)
    .bind(election.id)
    .execute(&mut *tx)
    .await?;
    if claimed.rows_affected() != 1 {
        return Ok(());
    }
    let rows =
        sqlx::query("SELECT receipt, ranking FROM ballots WHERE election_id = $1 ORDER BY receipt")
            .bind(election.id)
            .fetch_all(&mut *tx)
            .await?;
    let mut stored: Vec<(String, String)> = Vec::with_capacity(rows.len());
    for r in &rows {
        stored.push((r.try_get("receipt")?, r.try_get("ranking")?));
    }
    sqlx::query("DELETE FROM ballots WHERE election_id = $1")
        .bind(election.id)
        .execute(&mut *tx)
        .await?;
    for (receipt, ranking) in &stored {
        sqlx::query("INSERT INTO ballots (election_id, receipt, ranking) VALUES ($1, $2, $3)")
            .bind(election.id)
            .bind(receipt)
            .bind(ranking)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("UPDATE election_roll SET voted = voted WHERE election_id = $1")
        .bind(election.id)
        .execute(&mut *tx)
        .await?;
    let roll_size: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM election_roll WHERE election_id = $1")
            .bind(election.id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
    let cast = i64::try_from(stored.len()).unwrap_or(i64::MAX);
    let quorum_met = cast * 100 >= election.quorum_percent * roll_size;
    let rankings: Vec<String> = stored.into_iter().map(|(_, r)| r).collect();
    let seed = election.seed.unwrap_or(0);
    let counted = build(&election.title, &candidates, &rankings, seats_of(election))
        .and_then(|e| count(&e, election.method, seats_of(election), seed));
    let mut notes: Vec<String> = Vec::new();
    let summary;
    match &counted {
        Ok(outcome) => {
            let json = serde_json::to_string(outcome).map_err(anyhow::Error::from)?;
            sqlx::query("UPDATE elections SET result_json = $1, result_text = $2 WHERE id = $3")
                .bind(json)
                .bind(outcome.to_text())
                .bind(election.id)
                .execute(&mut *tx)
                .await?;
            if quorum_met {
                notes.extend(
                    seat_elected(&mut tx, state.db.now(), election, &candidates, outcome).await?,
                );
                summary = format!("Elected: {}.", outcome.elected.join(", "));
            } else {
                let note = format!(
                    "The quorum was not met ({cast} of {roll_size} on the roll voted; {}% needed), so nobody takes a seat.",
                    election.quorum_percent
                );
                summary = note.clone();
                notes.push(note);
            }
        }
        Err(err) => {
            let note = format!("The ballots could not be counted: {err}");
            summary = note.clone();
            notes.push(note);
        }
    }
    sqlx::query(
        "UPDATE elections SET quorum_met = $1, ballots_cast = $2, roll_size = $3, result_error = $4 WHERE id = $5",
    )
    .bind(i64::from(quorum_met))
    .bind(cast)
    .bind(roll_size)
    .bind((!notes.is_empty()).then(|| notes.join(" ")))
    .bind(election.id)
    .execute(&mut *tx)
    .await?;
    notices::scrub_election(&mut tx, state.db.now(), election.id).await?;
    notices::results(&mut tx, state, election, &summary).await?;
    state.queue.commit(tx).await?;
    Ok(())
}

/// Seats the elected in order of election, through the Circle. A regular election first ends
/// the terms that are over; a by-election only fills vacancies. Returns notes on anyone who
/// could not take a seat (no vacancy left, or a seat already held).
async fn seat_elected(
    tx: &mut Tx,
    now: i64,
    election: &Election,
    candidates: &[Candidate],
    outcome: &Outcome,
) -> Result<Vec<String>> {
    let t = now;
    let c = election.constituency;
    let mut circle = circle::load(tx).await?;
    if !election.by_election {
        circle::expire_terms(tx, &mut circle, c, t).await?;
    }
    let term_seconds: i64 = sqlx::query("SELECT term_seconds FROM circle_settings WHERE id = 1")
        .fetch_one(&mut **tx)
        .await?
        .try_get("term_seconds")?;
    let founding = circle.seated(c) == 0;
    let on_ballot: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.ballot_number.is_some())
        .collect();
    let mut notes = Vec::new();
    for (nth, &idx) in outcome.elected_indices.iter().enumerate() {
        let Some(cand) = on_ballot.get(idx) else {
            continue;
        };
        let term = circle::term_for(now, term_seconds, founding, nth);
        if let Err(err) = circle::seat_in(
            tx,
            &mut circle,
            c,
            cand.passport_id,
            Some(election.id),
            Some(term),
        )
        .await
        {
            notes.push(format!(
                "{} could not take a seat: {}",
                cand.ballot_name(),
                err.message().1
            ));
        }
    }
    circle::verify(tx, &circle).await?;
    Ok(notes)
}

/// The anonymised ballots of a closed election as BLT: identical ballots merged, no receipts.
pub async fn blt_file(db: &Db, election: &Election) -> Result<String> {
    if election.closed_at.is_none() || election.roll_frozen_at.is_none() {
        return Err(AppError::Forbidden(
            "The ballots are published when the election has closed.",
        ));
    }
    let candidates = elections::candidates(db, election.id).await?;
    if candidates.iter().all(|c| c.ballot_number.is_none()) {
        return Err(AppError::NotFound);
    }
    let rankings = rankings(db, election.id).await?;
    let e = build(&election.title, &candidates, &rankings, seats_of(election))
        .map_err(|e| anyhow::anyhow!("stored ballots: {e}"))?;
    Ok(blt::write(&e))
}

/// Fills a vacant seat of `c` by countback: the ballots of the constituency's most recent
/// counted election are counted again, with the same seats and seed, as if the Representatives
/// who have left (and anyone no longer able to sit for `c`) had withdrawn; the first person
/// elected in that recount who holds no seat takes the vacancy, for the rest of its term.
/// Returns the name of who was seated.
pub async fn countback(db: &Db, c: Constituency) -> Result<String> {
    let row = sqlx::query(
        "SELECT id FROM elections WHERE constituency = $1 AND closed_at IS NOT NULL AND quorum_met = 1 \
         AND result_json IS NOT NULL ORDER BY closed_at DESC, id DESC LIMIT 1",
    )
    .bind(constituency_key(c))
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| {
        AppError::invalid(
            "seats",
            format!("There is no counted {c} election to count back from: hold a by-election."),
        )
    })?;
    let election = elections::get(db, row.try_get("id")?).await?;
    let candidates = elections::candidates(db, election.id).await?;
    let on_ballot: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.ballot_number.is_some())
        .collect();
    let elected_before = stored_outcome(&election)?
        .map(|first| first.elected_indices)
        .unwrap_or_default();
    let seats = circle::seats(db).await?;
    let holds = |pid: i64| {
        seats
            .iter()
            .find(|s| s.holder.as_ref().is_some_and(|h| h.passport_id == pid))
    };
    let mut unavailable = Vec::new();
    for (i, cand) in on_ballot.iter().enumerate() {
        let gone = elected_before.contains(&i) && holds(cand.passport_id).is_none();
        let other_seat = holds(cand.passport_id).is_some_and(|s| s.constituency != c);
        let off_roll = !roll::is_eligible(db, c, cand.passport_id).await?;
        if cand.withdrawn || gone || other_seat || off_roll {
            unavailable.push(i);
        }
    }
    let rankings = rankings(db, election.id).await?;
    let recount = build(&election.title, &candidates, &rankings, seats_of(&election))
        .and_then(|e| e.with_withdrawn(&unavailable))
        .and_then(|e| {
            count(
                &e,
                election.method,
                seats_of(&election),
                election.seed.unwrap_or(0),
            )
        })
        .map_err(|e| {
            AppError::invalid(
                "seats",
                format!("The countback could not be run: {e}. Hold a by-election."),
            )
        })?;
    let mut tx: Tx = db.begin_write().await?;
    let mut circle = circle::load(&mut tx).await?;
    if circle.vacancies(c) == 0 {
        return Err(AppError::invalid(
            "seats",
            format!("No {c} seat is vacant."),
        ));
    }
    let pick = recount
        .elected_indices
        .iter()
        .filter_map(|&i| on_ballot.get(i))
        .find(|cand| circle.seat_of(&cand.passport_id).is_none())
        .ok_or_else(|| {
            AppError::invalid(
                "seats",
                "The countback elects nobody new: every remaining candidate already sits. Hold a by-election.",
            )
        })?;
    circle::seat_in(
        &mut tx,
        &mut circle,
        c,
        pick.passport_id,
        Some(election.id),
        None,
    )
    .await?;
    circle::verify(&mut tx, &circle).await?;
    tx.commit().await?;
    Ok(pick.ballot_name())
}

/// The count of an election as stored when it closed, read back as the governance core's
/// [`Outcome`]; `None` before the count. A stored result that does not read back (damaged, or
/// naming candidates it does not have) is an internal error with the reason in the log: pages
/// show an error page for it, never a partial or made-up result.
pub fn stored_outcome(election: &Election) -> Result<Option<Outcome>> {
    let Some(json) = election.result_json.as_deref() else {
        return Ok(None);
    };
    serde_json::from_str(json).map(Some).map_err(|err| {
        anyhow::anyhow!(
            "election {}: the stored result cannot be read: {err}",
            election.id
        )
        .into()
    })
}

/// Counts a BLT file offline: what `convene tally` runs. `seats` defaults to the file's.
pub fn tally_text(
    text: &str,
    method: &str,
    seats: Option<usize>,
    seed: u64,
) -> anyhow::Result<Outcome> {
    let method: Method = method.parse()?;
    let election = blt::parse(text)?;
    let seats = seats.or(election.seats()).unwrap_or(1);
    Ok(count(&election, method, seats, seed)?)
}
