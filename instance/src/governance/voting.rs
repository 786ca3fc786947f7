//! Voting: freezing the roll, ballot links, casting a secret ballot, receipts and reminders.
//!
//! When voting opens, the roll is frozen: everyone on the constituency's roll at that moment
//! gets a row with the SHA-256 of a fresh link secret, and an email with the link. The seed of
//! the lot is drawn in the same transaction and shown on the election's page from then on.
//!
//! Casting runs in one transaction that (1) counts the ballot on the election row only while
//! voting is open, which also serialises casts against the close, (2) flips the roll row's
//! `voted` flag only if it was 0, and (3) inserts the ballot under a random receipt. If any step
//! fails nothing is stored, so a link votes at most once and a vote that was confirmed is
//! always in the count.

use convene_governance::Method;
use rand::{Rng, RngCore};
use sqlx::Row;

use super::elections::{self, Candidate, Election, Phase};
use super::notices;
use super::{Tx, roll};
use crate::core::Core;
use crate::db::Db;
use crate::domain::{random_token, sha256_hex};
use crate::error::{AppError, Result};
use crate::mail::Email;

/// The ballot link's path for a secret.
pub fn ballot_path(election_id: i64, secret: &str) -> String {
    convene_web::routes::ballot(election_id, secret)
}

/// A receipt code: 60 random bits in Crockford's base32, grouped for reading aloud.
fn receipt() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut rng = rand::rngs::OsRng;
    let chars: Vec<char> = (0..12)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..32)]))
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// Freezes the roll, numbers the candidates, draws the seed and sends every voter a ballot
/// link. Does nothing if another request already did. An election nobody stood in is closed
/// without a vote.
pub async fn freeze(state: &Core, election: &Election) -> Result<()> {
    let voters = roll::eligible(&state.db, election.constituency).await?;
    let mut standing: Vec<Candidate> = elections::candidates(&state.db, election.id)
        .await?
        .into_iter()
        .filter(Candidate::standing)
        .collect();
    standing.sort_by(|a, b| {
        (a.display_name.to_lowercase(), &a.handle).cmp(&(b.display_name.to_lowercase(), &b.handle))
    });
    let seed = rand::rngs::OsRng.next_u64();
    let t = state.db.now();
    let mut tx: Tx = state.db.begin_write().await?;
    let claimed = sqlx::query(
        "UPDATE elections SET roll_frozen_at = $1, seed = $2, roll_size = $3 \
         WHERE id = $4 AND roll_frozen_at IS NULL AND closed_at IS NULL",
    )
    .bind(t)
    .bind(seed.to_string())
    .bind(i64::try_from(voters.len()).unwrap_or(i64::MAX))
    .bind(election.id)
    .execute(&mut *tx)
    .await?;
    if claimed.rows_affected() != 1 {
        return Ok(());
    }
    if standing.is_empty() {
        sqlx::query("UPDATE elections SET closed_at = $1, result_error = $2 WHERE id = $3")
            .bind(t)
            .bind("Nobody stood, so there was no vote.")
            .bind(election.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(());
    }
    for (i, c) in standing.iter().enumerate() {
        sqlx::query("UPDATE nominations SET ballot_number = $1 WHERE id = $2")
            .bind(i64::try_from(i + 1).unwrap_or(i64::MAX))
            .bind(c.nomination_id)
            .execute(&mut *tx)
            .await?;
    }
    let mut frozen = election.clone();
    frozen.seed = Some(seed);
    // Nobody visited while voting was open (and no worker runs): the roll is still frozen for
    // the turnout, but links that could no longer be used are not sent.
    let send = t < election.voting_close_at;
    let k = notices::kind(election.id, "ballot");
    for v in &voters {
        let secret = random_token();
        sqlx::query(
            "INSERT INTO election_roll (election_id, passport_id, email, token_hash) VALUES ($1, $2, $3, $4)",
        )
        .bind(election.id)
        .bind(v.passport_id)
        .bind(&v.email)
        .bind(sha256_hex(&secret))
        .execute(&mut *tx)
        .await?;
        if send {
            let link = state.settings.url(&ballot_path(election.id, &secret));
            let (subject, body) =
                notices::ballot_body(state, &frozen, &v.display_name, &link, false);
            state
                .mailer
                .enqueue_in(
                    &mut tx,
                    Email {
                        to: &v.email,
                        subject: &subject,
                        body: &body,
                        kind: &k,
                    },
                )
                .await?;
        }
    }
    state.queue.commit(tx).await?;
    Ok(())
}

/// A valid, unused ballot link: the election and the candidates on the ballot.
#[derive(Debug, Clone)]
pub struct BallotAccess {
    pub election: Election,
    /// Standing candidates in ballot order.
    pub candidates: Vec<Candidate>,
}

/// Checks a ballot link: the election is in its voting window, the secret is on its roll and
/// has not voted.
pub async fn open_ballot(db: &Db, election_id: i64, secret: &str) -> Result<BallotAccess> {
    let election = elections::get(db, election_id).await?;
    let row =
        sqlx::query("SELECT voted FROM election_roll WHERE election_id = $1 AND token_hash = $2")
            .bind(election_id)
            .bind(sha256_hex(secret))
            .fetch_optional(&db.pool)
            .await?;
    let Some(row) = row else {
        return Err(AppError::Forbidden(
            "This ballot link is not valid for this election. Use the newest link emailed to you: a reminder replaces the earlier link.",
        ));
    };
    if row.try_get::<i64, _>("voted")? != 0 {
        return Err(AppError::Gone(
            "This ballot link has already been used: a ballot was cast with it, and each link votes once.",
        ));
    }
    match election.phase(db.now()) {
        Phase::Voting => {}
        Phase::Counting | Phase::Closed => {
            return Err(AppError::Gone("Voting in this election has closed."));
        }
        _ => {
            return Err(AppError::Forbidden(
                "Voting in this election has not opened yet.",
            ));
        }
    }
    let candidates = elections::candidates(db, election_id)
        .await?
        .into_iter()
        .filter(|c| c.standing() && c.ballot_number.is_some())
        .collect();
    Ok(BallotAccess {
        election,
        candidates,
    })
}

/// True for methods whose ballot is a ranking.
pub fn is_ranked(method: Method) -> bool {
    matches!(
        method,
        Method::ScottishStv | Method::Meek | Method::Irv | Method::Schulze
    )
}

/// Reads a submitted ballot form into ballot numbers (in order of preference; approval:
/// ascending), or explains what is wrong. An empty list is a blank ballot, which the voter
/// must ask for explicitly.
///
/// Fields: `rank-{n}` = 1, 2, ... for ranked methods; `approve` = n (repeated) for approval;
/// `choice` = n for plurality; `blank` = true for a blank ballot.
pub fn read_ballot(
    method: Method,
    candidates: &[Candidate],
    form: &[(String, String)],
) -> Result<Vec<i64>> {
    let numbers: Vec<i64> = candidates.iter().filter_map(|c| c.ballot_number).collect();
    let unknown = || {
        AppError::invalid(
            "ballot",
            "The ballot names a candidate who is not standing (withdrawn or unknown). Choose only among the candidates listed.",
        )
    };
    let number = |s: &str| -> Result<i64> {
        s.trim()
            .parse::<i64>()
            .ok()
            .filter(|n| numbers.contains(n))
            .ok_or_else(unknown)
    };
    let blank = form.iter().any(|(k, v)| k == "blank" && v == "true");
    let mut chosen: Vec<i64> = Vec::new();
    if is_ranked(method) {
        let mut ranks: Vec<(i64, i64)> = Vec::new();
        for (k, v) in form {
            let Some(n) = k.strip_prefix("rank-") else {
                continue;
            };
            let n = number(n)?;
            if v.trim().is_empty() {
                continue;
            }
            let rank: i64 = v
                .trim()
                .parse()
                .ok()
                .filter(|r| (1..=i64::try_from(numbers.len()).unwrap_or(0)).contains(r))
                .ok_or_else(|| {
                    AppError::invalid("ballot", format!("Ranks go from 1 to {}.", numbers.len()))
                })?;
            if ranks.iter().any(|&(m, _)| m == n) {
                return Err(unknown());
            }
            ranks.push((n, rank));
        }
        ranks.sort_by_key(|&(_, r)| r);
        for (i, pair) in ranks.iter().enumerate() {
            let expected = i64::try_from(i + 1).unwrap_or(0);
            if pair.1 < expected {
                return Err(AppError::invalid(
                    "ballot",
                    format!(
                        "Two candidates have rank {}: give each number once.",
                        pair.1
                    ),
                ));
            }
            if pair.1 > expected {
                return Err(AppError::invalid(
                    "ballot",
                    format!(
                        "Rank {expected} is missing: number your choices 1, 2, 3 \u{2026} without gaps."
                    ),
                ));
            }
        }
        chosen = ranks.into_iter().map(|(n, _)| n).collect();
    } else if method == Method::Approval {
        for (k, v) in form {
            if k == "approve" {
                let n = number(v)?;
                if !chosen.contains(&n) {
                    chosen.push(n);
                }
            }
        }
        chosen.sort_unstable();
    } else {
        let picks: Vec<&String> = form
            .iter()
            .filter(|(k, _)| k == "choice")
            .map(|(_, v)| v)
            .collect();
        if picks.len() > 1 {
            return Err(AppError::invalid("ballot", "Choose one candidate only."));
        }
        if let Some(v) = picks.first() {
            chosen.push(number(v)?);
        }
    }
    if blank && !chosen.is_empty() {
        return Err(AppError::invalid(
            "ballot",
            "You asked for a blank ballot and also chose candidates: do one or the other.",
        ));
    }
    if !blank && chosen.is_empty() {
        return Err(AppError::invalid(
            "ballot",
            "Choose at least one candidate, or tick \u{201c}cast a blank ballot\u{201d}.",
        ));
    }
    Ok(chosen)
}

/// Casts a ballot with a link secret; returns the receipt.
pub async fn cast(
    state: &Core,
    election_id: i64,
    secret: &str,
    form: &[(String, String)],
) -> Result<String> {
    let access = open_ballot(&state.db, election_id, secret).await?;
    let chosen = read_ballot(access.election.method, &access.candidates, form)?;
    let ranking = chosen
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    let hash = sha256_hex(secret);
    let code = receipt();
    let t = state.db.now();
    let mut tx: Tx = state.db.begin_write().await?;
    let open = sqlx::query(
        "UPDATE elections SET ballots_cast = ballots_cast + 1 WHERE id = $1 AND closed_at IS NULL \
         AND roll_frozen_at IS NOT NULL AND voting_open_at <= $2 AND voting_close_at > $2",
    )
    .bind(election_id)
    .bind(t)
    .execute(&mut *tx)
    .await?;
    if open.rows_affected() != 1 {
        return Err(AppError::Gone("Voting in this election has closed."));
    }
    let marked = sqlx::query(
        "UPDATE election_roll SET voted = 1 WHERE election_id = $1 AND token_hash = $2 AND voted = 0",
    )
    .bind(election_id)
    .bind(&hash)
    .execute(&mut *tx)
    .await?;
    if marked.rows_affected() != 1 {
        return Err(AppError::Gone(
            "This ballot link has already been used: a ballot was cast with it, and each link votes once.",
        ));
    }
    sqlx::query("INSERT INTO ballots (election_id, receipt, ranking) VALUES ($1, $2, $3)")
        .bind(election_id)
        .bind(&code)
        .bind(&ranking)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;

    // The confirmation is a separate step: the vote stands even if queuing the email fails.
    let confirm = async {
        let row = sqlx::query(
            "SELECT r.email, p.display_name FROM election_roll r JOIN passports p ON p.id = r.passport_id \
             WHERE r.token_hash = $1",
        )
        .bind(&hash)
        .fetch_one(&state.db.pool)
        .await?;
        let email: String = row.try_get("email")?;
        let name: String = row.try_get("display_name")?;
        // The receipt code is not in this mail: the mail names the voter, so a stored copy of
        // it beside the ballots table would link the voter to their ranking. The code is shown
        // once, on the screen, after casting.
        let body = format!(
            "Hello {name},\n\nA ballot was cast with your link in \u{201c}{}\u{201d}; it is recorded and \
             will be counted once.\n\nYour receipt code was shown on the screen when you voted. After \
             voting closes you can find it on the public list of received ballots:\n{}\n\n\
             If you did not vote, tell the stewards at once.\n\n-- \n{}\n",
            access.election.title,
            state
                .settings
                .url(&convene_web::routes::receipts(access.election.id)),
            state.settings.instance_name,
        );
        let mut tx: Tx = state.db.begin_write().await?;
        state
            .mailer
            .enqueue_in(
                &mut tx,
                Email {
                    to: &email,
                    subject: &format!("Ballot recorded: {}", access.election.title),
                    body: &body,
                    kind: &notices::kind(election_id, "receipt"),
                },
            )
            .await?;
        state.queue.commit(tx).await?;
        Ok::<(), AppError>(())
    };
    if let Err(err) = confirm.await {
        tracing::warn!(error = %err, election_id, "queuing a vote confirmation");
    }
    Ok(code)
}

/// Sends a reminder with a fresh link to everyone on the roll who has not voted. Returns how
/// many were sent.
pub async fn remind(state: &Core, election: &Election) -> Result<usize> {
    if election.phase(state.db.now()) != Phase::Voting {
        return Err(AppError::Forbidden(
            "Reminders go out only while voting is open.",
        ));
    }
    send_reminders(state, election, None).await
}

/// The automatic reminder (a day before the close), sent once.
pub async fn auto_remind(state: &Core, election: &Election) -> Result<usize> {
    send_reminders(state, election, Some(())).await
}

async fn send_reminders(state: &Core, election: &Election, automatic: Option<()>) -> Result<usize> {
    let mut tx: Tx = state.db.begin_write().await?;
    if automatic.is_some() {
        let claimed = sqlx::query(
            "UPDATE elections SET auto_reminder_at = $1 WHERE id = $2 AND auto_reminder_at IS NULL",
        )
        .bind(state.db.now())
        .bind(election.id)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() != 1 {
            return Ok(0);
        }
    }
    let rows = sqlx::query(
        "SELECT r.passport_id, r.email, p.display_name FROM election_roll r \
         JOIN passports p ON p.id = r.passport_id WHERE r.election_id = $1 AND r.voted = 0 ORDER BY r.passport_id",
    )
    .bind(election.id)
    .fetch_all(&mut *tx)
    .await?;
    let k = notices::kind(election.id, "reminder");
    let mut sent = 0;
    for r in rows {
        let id: i64 = r.try_get("passport_id")?;
        let email: String = r.try_get("email")?;
        let name: String = r.try_get("display_name")?;
        let secret = random_token();
        let renewed = sqlx::query(
            "UPDATE election_roll SET token_hash = $1 WHERE election_id = $2 AND passport_id = $3 AND voted = 0",
        )
        .bind(sha256_hex(&secret))
        .bind(election.id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if renewed.rows_affected() == 1 {
            let link = state.settings.url(&ballot_path(election.id, &secret));
            let (subject, body) = notices::ballot_body(state, election, &name, &link, true);
            state
                .mailer
                .enqueue_in(
                    &mut tx,
                    Email {
                        to: &email,
                        subject: &subject,
                        body: &body,
                        kind: &k,
                    },
                )
                .await?;
            sent += 1;
        }
    }
    state.queue.commit(tx).await?;
    Ok(sent)
}

/// The receipts of the ballots received, sorted (they are random, so sorted says nothing).
pub async fn receipts(db: &Db, election_id: i64) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT receipt FROM ballots WHERE election_id = $1 ORDER BY receipt")
        .bind(election_id)
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<String, _>("receipt")?))
        .collect()
}

/// How many on the roll have voted (the turnout, not who).
pub async fn turnout(db: &Db, election_id: i64) -> Result<(i64, i64)> {
    let r = sqlx::query(
        "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(voted), 0) AS BIGINT) AS v FROM election_roll WHERE election_id = $1",
    )
    .bind(election_id)
    .fetch_one(&db.pool)
    .await?;
    Ok((r.try_get("v")?, r.try_get("n")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(n: i64) -> Candidate {
        Candidate {
            nomination_id: n,
            passport_id: n,
            handle: format!("c{n}"),
            display_name: format!("C {n}"),
            statement: String::new(),
            nominated_by: None,
            nominated_by_id: None,
            accepted: true,
            withdrawn: false,
            ballot_number: Some(n),
        }
    }

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ranked_ballots_need_distinct_ranks_without_gaps() {
        let cs: Vec<Candidate> = (1..=3).map(cand).collect();
        let ok = read_ballot(
            Method::ScottishStv,
            &cs,
            &form(&[("rank-1", "2"), ("rank-2", ""), ("rank-3", "1")]),
        );
        assert_eq!(ok.expect("valid"), vec![3, 1]);
        let dup = read_ballot(
            Method::ScottishStv,
            &cs,
            &form(&[("rank-1", "1"), ("rank-3", "1")]),
        );
        assert!(format!("{:?}", dup).contains("Two candidates have rank 1"));
        let gap = read_ballot(
            Method::Meek,
            &cs,
            &form(&[("rank-1", "1"), ("rank-3", "3")]),
        );
        assert!(format!("{:?}", gap).contains("Rank 2 is missing"));
        let unknown = read_ballot(Method::Irv, &cs, &form(&[("rank-9", "1")]));
        assert!(format!("{:?}", unknown).contains("not standing"));
        let nothing = read_ballot(Method::Schulze, &cs, &form(&[("rank-1", "")]));
        assert!(nothing.is_err());
        let blank = read_ballot(
            Method::Schulze,
            &cs,
            &form(&[("rank-1", ""), ("blank", "true")]),
        );
        assert_eq!(
            blank.expect("blank is allowed when asked for"),
            Vec::<i64>::new()
        );
    }

    #[test]
    fn approval_and_plurality_ballots() {
        let cs: Vec<Candidate> = (1..=3).map(cand).collect();
        let a = read_ballot(
            Method::Approval,
            &cs,
            &form(&[("approve", "3"), ("approve", "1")]),
        );
        assert_eq!(a.expect("valid"), vec![1, 3]);
        let p = read_ballot(
            Method::Plurality,
            &cs,
            &form(&[("choice", "2"), ("choice", "3")]),
        );
        assert!(p.is_err(), "one choice only");
        let p = read_ballot(Method::Plurality, &cs, &form(&[("choice", "2")]));
        assert_eq!(p.expect("valid"), vec![2]);
        let mut withdrawn = cs.clone();
        withdrawn[1].withdrawn = true;
        let standing: Vec<Candidate> = withdrawn.into_iter().filter(Candidate::standing).collect();
        assert!(read_ballot(Method::Plurality, &standing, &form(&[("choice", "2")])).is_err());
    }

    #[test]
    fn receipts_are_grouped_and_random() {
        let a = receipt();
        assert_eq!(a.len(), 14);
        assert_eq!(a.matches('-').count(), 2);
        assert_ne!(a, receipt());
    }
}
