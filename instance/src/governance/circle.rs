//! The seats of the Circle of Stewards, stored in `circle_seats`.
//!
//! Every change loads the seats into a `convene_governance::circle::Circle`, asks it to make the
//! change (it refuses anything that would unbalance the Circle, fill a seat from the wrong
//! constituency or give one person two seats), writes the result, and checks the stored rows
//! again before committing. The UI, the API and any script go through these functions, so no
//! path leaves the seated Circle unbalanced.
//!
//! Terms: a seat filled by an election runs `term_seconds` (two years by default). When an
//! election fills a constituency whose seats were all empty (the founding election), every
//! second seat gets half a term, so that from then on about half the seats come up for renewal
//! at a time. A seat filled by countback keeps the term of the seat it fills.

use convene_governance::circle::{Circle, Constituency};
use serde::Serialize;
use sqlx::Row;

use super::{Tx, constituency_key, parse_constituency};
use crate::db::Db;
use crate::error::{AppError, Result};

/// One seat as shown on the governance page.
#[derive(Debug, Clone, Serialize)]
pub struct Seat {
    pub constituency: Constituency,
    pub seat_no: i64,
    pub holder: Option<Holder>,
    pub term_start: Option<i64>,
    pub term_end: Option<i64>,
    pub election_id: Option<i64>,
}

/// Who holds a seat.
#[derive(Debug, Clone, Serialize)]
pub struct Holder {
    pub passport_id: i64,
    pub handle: String,
    pub display_name: String,
}

/// Turns a refusal of the Circle's rules into a form error.
pub(crate) fn refused(err: convene_governance::Error) -> AppError {
    AppError::invalid("seats", err.to_string())
}

/// Every seat, Resident seats first, in seat order.
pub async fn seats(db: &Db) -> Result<Vec<Seat>> {
    let rows = sqlx::query(
        "SELECT s.constituency, s.seat_no, s.passport_id, s.term_start, s.term_end, s.election_id, \
         p.handle, p.display_name FROM circle_seats s LEFT JOIN passports p ON p.id = s.passport_id \
         ORDER BY s.constituency, s.seat_no",
    )
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let holder = match r.try_get::<Option<i64>, _>("passport_id")? {
            Some(id) => Some(Holder {
                passport_id: id,
                handle: r.try_get("handle")?,
                display_name: r.try_get("display_name")?,
            }),
            None => None,
        };
        out.push(Seat {
            constituency: parse_constituency(&r.try_get::<String, _>("constituency")?)?,
            seat_no: r.try_get("seat_no")?,
            holder,
            term_start: r.try_get("term_start")?,
            term_end: r.try_get("term_end")?,
            election_id: r.try_get("election_id")?,
        });
    }
    Ok(out)
}

/// Seats per constituency, as set.
pub async fn size(db: &Db) -> Result<i64> {
    Ok(
        sqlx::query("SELECT seats_per_constituency FROM circle_settings WHERE id = 1")
            .fetch_one(&db.pool)
            .await?
            .try_get("seats_per_constituency")?,
    )
}

/// Loads the stored seats as a [`Circle`] of Passport ids, checking that the rows are
/// balanced and match the setting.
pub(crate) async fn load(tx: &mut Tx) -> Result<Circle<i64>> {
    let n: i64 = sqlx::query("SELECT seats_per_constituency FROM circle_settings WHERE id = 1")
        .fetch_one(&mut **tx)
        .await?
        .try_get("seats_per_constituency")?;
    let rows = sqlx::query(
        "SELECT constituency, passport_id FROM circle_seats ORDER BY constituency, seat_no",
    )
    .fetch_all(&mut **tx)
    .await?;
    let per = usize::try_from(n).map_err(|_| anyhow::anyhow!("negative Circle size"))?;
    let mut circle = Circle::new(per).map_err(|e| anyhow::anyhow!("stored Circle: {e}"))?;
    let mut counts = [0usize; 2];
    for r in rows {
        let c = parse_constituency(&r.try_get::<String, _>("constituency")?)?;
        counts[usize::from(c == Constituency::Worker)] += 1;
        if let Some(id) = r.try_get::<Option<i64>, _>("passport_id")? {
            circle
                .seat(c, id)
                .map_err(|e| anyhow::anyhow!("stored Circle is inconsistent: {e}"))?;
        }
    }
    if counts != [per, per] {
        return Err(anyhow::anyhow!(
            "stored Circle is unbalanced: {} Resident and {} Worker seats, {per} each expected",
            counts[0],
            counts[1]
        )
        .into());
    }
    Ok(circle)
}

/// Checks, inside the transaction about to commit, that the stored seats still form a valid
/// Circle equal to `expected`.
pub(crate) async fn verify(tx: &mut Tx, expected: &Circle<i64>) -> Result<()> {
    let stored = load(tx).await?;
    for c in [Constituency::Resident, Constituency::Worker] {
        let mut a: Vec<i64> = stored.members(c).into_iter().copied().collect();
        let mut b: Vec<i64> = expected.members(c).into_iter().copied().collect();
        a.sort_unstable();
        b.sort_unstable();
        if a != b || stored.seats_per_constituency() != expected.seats_per_constituency() {
            return Err(anyhow::anyhow!("the stored Circle differs from the one decided").into());
        }
    }
    Ok(())
}

/// Seats `passport_id` in the lowest-numbered vacant seat of `c`. Returns the seat number.
pub(crate) async fn seat_in(
    tx: &mut Tx,
    circle: &mut Circle<i64>,
    c: Constituency,
    passport_id: i64,
    election_id: Option<i64>,
    term: Option<(i64, i64)>,
) -> Result<i64> {
    circle.seat(c, passport_id).map_err(refused)?;
    let row = sqlx::query(
        "SELECT seat_no FROM circle_seats WHERE constituency = $1 AND passport_id IS NULL \
         ORDER BY seat_no LIMIT 1",
    )
    .bind(constituency_key(c))
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| anyhow::anyhow!("the Circle has a vacancy but no empty seat row"))?;
    let seat_no: i64 = row.try_get("seat_no")?;
    match term {
        Some((start, end)) => {
            sqlx::query(
                "UPDATE circle_seats SET passport_id = $1, election_id = $2, term_start = $3, term_end = $4 \
                 WHERE constituency = $5 AND seat_no = $6",
            )
            .bind(passport_id)
            .bind(election_id)
            .bind(start)
            .bind(end)
            .bind(constituency_key(c))
            .bind(seat_no)
            .execute(&mut **tx)
            .await?;
        }
        None => {
            // Countback: the seat keeps its term.
            sqlx::query(
                "UPDATE circle_seats SET passport_id = $1, election_id = $2 WHERE constituency = $3 AND seat_no = $4",
            )
            .bind(passport_id)
            .bind(election_id)
            .bind(constituency_key(c))
            .bind(seat_no)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(seat_no)
}

/// Frees the seat `passport_id` holds (resignation or removal). The vacancy stays with the
/// seat's constituency and keeps its term, for a countback or by-election to fill.
pub async fn vacate(db: &Db, passport_id: i64) -> Result<Constituency> {
    let mut tx: Tx = db.begin_write().await?;
    let mut circle = load(&mut tx).await?;
    let (c, _) = circle.vacate(&passport_id).map_err(refused)?;
    sqlx::query("UPDATE circle_seats SET passport_id = NULL WHERE passport_id = $1")
        .bind(passport_id)
        .execute(&mut *tx)
        .await?;
    verify(&mut tx, &circle).await?;
    tx.commit().await?;
    Ok(c)
}

/// Vacates seats of `c` whose term has ended, before an election fills them again.
pub(crate) async fn expire_terms(
    tx: &mut Tx,
    circle: &mut Circle<i64>,
    c: Constituency,
    t: i64,
) -> Result<()> {
    let rows = sqlx::query(
        "SELECT passport_id FROM circle_seats WHERE constituency = $1 AND passport_id IS NOT NULL \
         AND term_end IS NOT NULL AND term_end <= $2",
    )
    .bind(constituency_key(c))
    .bind(t)
    .fetch_all(&mut **tx)
    .await?;
    for r in rows {
        let id: i64 = r.try_get("passport_id")?;
        circle.vacate(&id).map_err(refused)?;
        sqlx::query("UPDATE circle_seats SET passport_id = NULL WHERE passport_id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Changes the number of seats of both constituencies at once. Growing adds vacancies to
/// each; shrinking removes only vacant seats and is refused unless both constituencies have
/// enough of them.
pub async fn resize(db: &Db, seats_per_constituency: i64) -> Result<()> {
    if !(1..=50).contains(&seats_per_constituency) {
        return Err(AppError::invalid(
            "seats",
            "Give between 1 and 50 seats per constituency.",
        ));
    }
    let per = usize::try_from(seats_per_constituency).unwrap_or(1);
    let mut tx: Tx = db.begin_write().await?;
    let mut circle = load(&mut tx).await?;
    let current = i64::try_from(circle.seats_per_constituency()).unwrap_or(0);
    circle.resize(per).map_err(refused)?;
    for c in [Constituency::Resident, Constituency::Worker] {
        if seats_per_constituency > current {
            let top: i64 = sqlx::query(
                "SELECT COALESCE(MAX(seat_no), -1) AS m FROM circle_seats WHERE constituency = $1",
            )
            .bind(constituency_key(c))
            .fetch_one(&mut *tx)
            .await?
            .try_get("m")?;
            for k in 1..=(seats_per_constituency - current) {
                sqlx::query("INSERT INTO circle_seats (constituency, seat_no) VALUES ($1, $2)")
                    .bind(constituency_key(c))
                    .bind(top + k)
                    .execute(&mut *tx)
                    .await?;
            }
        } else {
            for _ in 0..(current - seats_per_constituency) {
                sqlx::query(
                    "DELETE FROM circle_seats WHERE constituency = $1 AND seat_no = \
                     (SELECT MAX(seat_no) FROM circle_seats WHERE constituency = $1 AND passport_id IS NULL)",
                )
                .bind(constituency_key(c))
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    sqlx::query("UPDATE circle_settings SET seats_per_constituency = $1 WHERE id = 1")
        .bind(seats_per_constituency)
        .execute(&mut *tx)
        .await?;
    verify(&mut tx, &circle).await?;
    tx.commit().await?;
    Ok(())
}

/// The term for a seat filled now by an election: a full term, or half a term for every
/// second seat of a founding election (see the module docs).
pub(crate) fn term_for(now: i64, term_seconds: i64, founding: bool, nth: usize) -> (i64, i64) {
    let t = now;
    let length = if founding && nth % 2 == 1 {
        term_seconds / 2
    } else {
        term_seconds
    };
    (t, t + length)
}

#[cfg(test)]
mod tests {
    #[test]
    fn founding_terms_alternate_full_and_half() {
        let (s0, e0) = super::term_for(crate::clock::Clock::system().now(), 100, true, 0);
        let (s1, e1) = super::term_for(crate::clock::Clock::system().now(), 100, true, 1);
        assert_eq!((e0 - s0, e1 - s1), (100, 50));
        let (s, e) = super::term_for(crate::clock::Clock::system().now(), 100, false, 1);
        assert_eq!(e - s, 100);
    }
}
