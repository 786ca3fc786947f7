//! Motions of the Circle: a new Budget or new Objectives, decided by double majority.
//!
//! A steward proposes; every steward votes once (for, against or abstain), in public. After
//! each vote the motion is decided with `convene_governance::motion::decide`: it passes the
//! moment it has a majority of the Resident seats and a majority of the Worker seats, and is
//! applied in the same transaction; it fails the moment one constituency can no longer reach its
//! majority with the votes still to come. Vacant seats count as not in favour.

use convene_governance::budget::Budget;
use convene_governance::circle::Constituency;
use convene_governance::motion::{Position, decide};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Tx, circle, constituency_key, opt_flag, parse_constituency};
use crate::db::Db;
use crate::domain::passports::Passport;
use crate::domain::values::parse_text;
use crate::error::{AppError, Result, is_unique_violation};

/// The Budget and the Objectives in force.
#[derive(Debug, Clone, Serialize)]
pub struct Standing {
    pub budget: Budget,
    pub objectives: Vec<String>,
}

/// Reads the Budget and the Objectives.
pub async fn standing(db: &Db) -> Result<Standing> {
    let r = sqlx::query(
        "SELECT budget_infrastructure, budget_operations, budget_patronage, objectives FROM circle_settings WHERE id = 1",
    )
    .fetch_one(&db.pool)
    .await?;
    let share =
        |col: &str| -> Result<u8> { Ok(u8::try_from(r.try_get::<i64, _>(col)?).unwrap_or(0)) };
    let budget = Budget::new(
        share("budget_infrastructure")?,
        share("budget_operations")?,
        share("budget_patronage")?,
    )
    .map_err(|e| anyhow::anyhow!("stored budget: {e}"))?;
    let objectives: String = r.try_get("objectives")?;
    Ok(Standing {
        budget,
        objectives: split_objectives(&objectives),
    })
}

fn split_objectives(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim().trim_start_matches(['-', '*']).trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// A steward's vote on a motion.
#[derive(Debug, Clone, Serialize)]
pub struct Vote {
    pub handle: String,
    pub display_name: String,
    pub constituency: Constituency,
    pub position: String,
}

/// A motion with its votes.
#[derive(Debug, Clone, Serialize)]
pub struct Motion {
    pub id: i64,
    /// `budget` or `objectives`.
    pub kind: String,
    pub title: String,
    pub budget: Option<Budget>,
    pub objectives: Option<Vec<String>>,
    pub proposed_by: Option<String>,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    pub passed: Option<bool>,
    pub votes: Vec<Vote>,
    /// The decision's counts, once decided.
    pub decision: Option<serde_json::Value>,
}

fn position_key(p: Position) -> &'static str {
    match p {
        Position::For => "for",
        Position::Against => "against",
        Position::Abstain => "abstain",
    }
}

/// Reads `for`, `against` or `abstain`.
pub fn parse_position(s: &str) -> Result<Position> {
    match s.trim() {
        "for" => Ok(Position::For),
        "against" => Ok(Position::Against),
        "abstain" => Ok(Position::Abstain),
        _ => Err(AppError::invalid(
            "position",
            "Vote for, against or abstain.",
        )),
    }
}

const COLUMNS: &str = "m.id, m.kind, m.title, m.budget_infrastructure, m.budget_operations, m.budget_patronage, \
    m.objectives, p.handle AS proposer, m.created_at, m.decided_at, m.passed, m.decision_json";

fn from_row(r: &AnyRow) -> Result<Motion> {
    let share = |col: &str| -> Result<Option<u8>> {
        Ok(r.try_get::<Option<i64>, _>(col)?
            .map(|v| u8::try_from(v).unwrap_or(0)))
    };
    let budget = match (
        share("budget_infrastructure")?,
        share("budget_operations")?,
        share("budget_patronage")?,
    ) {
        (Some(i), Some(o), Some(p)) => Budget::new(i, o, p).ok(),
        _ => None,
    };
    Ok(Motion {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        title: r.try_get("title")?,
        budget,
        objectives: r
            .try_get::<Option<String>, _>("objectives")?
            .map(|t| split_objectives(&t)),
        proposed_by: r.try_get("proposer")?,
        created_at: r.try_get("created_at")?,
        decided_at: r.try_get("decided_at")?,
        passed: opt_flag(r, "passed")?,
        votes: Vec::new(),
        decision: r
            .try_get::<Option<String>, _>("decision_json")?
            .and_then(|j| serde_json::from_str(&j).ok()),
    })
}

/// One motion with its votes.
pub async fn get(db: &Db, id: i64) -> Result<Motion> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM motions m LEFT JOIN passports p ON p.id = m.proposed_by WHERE m.id = $1"
    )))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?
    .ok_or(AppError::NotFound)?;
    let mut motion = from_row(&r)?;
    let rows = sqlx::query(
        "SELECT p.handle, p.display_name, v.constituency, v.position FROM motion_votes v \
         JOIN passports p ON p.id = v.passport_id WHERE v.motion_id = $1 ORDER BY v.at, p.handle",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await?;
    for v in rows {
        motion.votes.push(Vote {
            handle: v.try_get("handle")?,
            display_name: v.try_get("display_name")?,
            constituency: parse_constituency(&v.try_get::<String, _>("constituency")?)?,
            position: v.try_get("position")?,
        });
    }
    Ok(motion)
}

/// Every motion, newest first (without votes).
pub async fn list(db: &Db) -> Result<Vec<Motion>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM motions m LEFT JOIN passports p ON p.id = m.proposed_by ORDER BY m.id DESC"
    )))
    .fetch_all(&db.pool)
    .await?;
    rows.iter().map(from_row).collect()
}

async fn require_steward(db: &Db, by: &Passport) -> Result<()> {
    if super::is_steward(db, by.id).await? {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "Only stewards propose and vote on the Circle's motions.",
        ))
    }
}

/// Proposes new Budget shares (whole percentages).
pub async fn propose_budget(
    db: &Db,
    by: &Passport,
    infrastructure: i64,
    operations: i64,
    patronage: i64,
) -> Result<i64> {
    require_steward(db, by).await?;
    let pct = |v: i64, field: &'static str| {
        u8::try_from(v)
            .ok()
            .filter(|v| *v <= 100)
            .ok_or_else(|| AppError::invalid(field, "Give a whole percentage from 0 to 100."))
    };
    let budget = Budget::new(
        pct(infrastructure, "infrastructure")?,
        pct(operations, "operations")?,
        pct(patronage, "patronage")?,
    )
    .map_err(|e| AppError::invalid("infrastructure", e.to_string()))?;
    let title = format!(
        "Budget: {}% infrastructure, {}% operations, {}% patronage ({}% reserve)",
        budget.infrastructure(),
        budget.operations(),
        budget.patronage(),
        budget.reserve()
    );
    let r = sqlx::query(
        "INSERT INTO motions (kind, title, budget_infrastructure, budget_operations, budget_patronage, proposed_by, created_at) \
         VALUES ('budget', $1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(&title)
    .bind(i64::from(budget.infrastructure()))
    .bind(i64::from(budget.operations()))
    .bind(i64::from(budget.patronage()))
    .bind(by.id)
    .bind(db.now())
    .fetch_one(&db.pool)
    .await?;
    Ok(r.try_get("id")?)
}

/// Proposes a new list of Objectives (one per line).
pub async fn propose_objectives(db: &Db, by: &Passport, text: &str) -> Result<i64> {
    require_steward(db, by).await?;
    let text = parse_text(text, 4000).map_err(|e| AppError::invalid("objectives", e.0))?;
    let list = split_objectives(&text);
    if list.is_empty() {
        return Err(AppError::invalid(
            "objectives",
            "Write at least one objective, one per line.",
        ));
    }
    let r = sqlx::query(
        "INSERT INTO motions (kind, title, objectives, proposed_by, created_at) \
         VALUES ('objectives', $1, $2, $3, $4) RETURNING id",
    )
    .bind(format!("Objectives: {} item(s)", list.len()))
    .bind(list.join("\n"))
    .bind(by.id)
    .bind(db.now())
    .fetch_one(&db.pool)
    .await?;
    Ok(r.try_get("id")?)
}

/// Records a steward's vote and decides the motion if the votes so far settle it.
pub async fn vote(db: &Db, motion_id: i64, by: &Passport, position: Position) -> Result<Motion> {
    let motion = get(db, motion_id).await?;
    if motion.decided_at.is_some() {
        return Err(AppError::Gone("This motion is already decided."));
    }
    let mut tx: Tx = db.begin_write().await?;
    let circle = circle::load(&mut tx).await?;
    let Some(constituency) = circle.seat_of(&by.id) else {
        return Err(AppError::Forbidden(
            "Only stewards vote on the Circle's motions.",
        ));
    };
    let t = db.now();
    let inserted = sqlx::query(
        "INSERT INTO motion_votes (motion_id, passport_id, constituency, position, at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(motion_id)
    .bind(by.id)
    .bind(constituency_key(constituency))
    .bind(position_key(position))
    .bind(t)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(err) if is_unique_violation(&err) => {
            return Err(AppError::Conflict {
                field: "position",
                message: "You have already voted on this motion.".into(),
            });
        }
        Err(err) => return Err(err.into()),
    }
    let rows = sqlx::query("SELECT passport_id, position FROM motion_votes WHERE motion_id = $1")
        .bind(motion_id)
        .fetch_all(&mut *tx)
        .await?;
    let mut votes: Vec<(i64, Position)> = Vec::new();
    for r in rows {
        let id: i64 = r.try_get("passport_id")?;
        // Someone who has left the Circle since voting no longer counts.
        if circle.seat_of(&id).is_some() {
            votes.push((id, parse_position(&r.try_get::<String, _>("position")?)?));
        }
    }
    let decision =
        decide(&circle, &votes).map_err(|e| anyhow::anyhow!("deciding a motion: {e}"))?;
    let still_to_vote = |c: Constituency| {
        circle
            .members(c)
            .into_iter()
            .filter(|m| !votes.iter().any(|(v, _)| v == *m))
            .count()
    };
    let lost = decision.resident_for + still_to_vote(Constituency::Resident) < decision.needed
        || decision.worker_for + still_to_vote(Constituency::Worker) < decision.needed;
    if decision.passed || lost {
        let json = serde_json::to_string(&decision).map_err(anyhow::Error::from)?;
        let decided = sqlx::query(
            "UPDATE motions SET decided_at = $1, passed = $2, decision_json = $3 WHERE id = $4 AND decided_at IS NULL",
        )
        .bind(t)
        .bind(i64::from(decision.passed))
        .bind(json)
        .bind(motion_id)
        .execute(&mut *tx)
        .await?;
        if decided.rows_affected() != 1 {
            return Err(AppError::Gone("This motion is already decided."));
        }
        if decision.passed {
            if let Some(b) = &motion.budget {
                sqlx::query(
                    "UPDATE circle_settings SET budget_infrastructure = $1, budget_operations = $2, budget_patronage = $3 WHERE id = 1",
                )
                .bind(i64::from(b.infrastructure()))
                .bind(i64::from(b.operations()))
                .bind(i64::from(b.patronage()))
                .execute(&mut *tx)
                .await?;
            }
            if let Some(list) = &motion.objectives {
                sqlx::query("UPDATE circle_settings SET objectives = $1 WHERE id = 1")
                    .bind(list.join("\n"))
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    tx.commit().await?;
    get(db, motion_id).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn objectives_are_one_per_line_without_bullets() {
        assert_eq!(
            super::split_objectives("- Keep rooms free\n\n* Pay maintainers \n  plain"),
            vec!["Keep rooms free", "Pay maintainers", "plain"]
        );
    }
}
