//! The governance pages: the Circle, elections, ballots, results and motions.
//!
//! Every handler first runs [`governance::tick`], which moves elections along (notices, roll
//! freeze, close and count) lazily, so the pages always show an election in its true phase.

use axum::Form;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, REFERRER_POLICY};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use convene_governance::Method;
use convene_governance::circle::Constituency;
use convene_web::governance_view::{
    BallotCandidate, BallotKind, BallotView, BudgetView, CandidateView, DeliveryRow, ElectionForm,
    ElectionRow, ElectionView, GovernanceView, MotionForm, MotionRow, MotionView, NominateForm,
    PersonRef, ReceiptView, ReceiptsView, ResultView, RoleForm, RoleLogRow, RoundView, SeatView,
    SizeForm, WorkerRow,
};
use convene_web::view::FormErrors;
use serde::Deserialize;
use serde_json::Value;

use super::{context, date, form_errors, invalid, redirect_with};
use crate::app::AppState;
use crate::domain::passports::Passport;
use crate::error::{AppError, FieldError, Result};
use crate::governance::elections::{self, Election, NewElection, Phase};
use crate::governance::{self, circle, motions, notices, roll, tally, voting};
use crate::http::visitor::Visitor;

/// The governance routes, merged into the page router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/governance", get(overview))
        .route("/governance/workers", post(set_role))
        .route("/governance/circle/size", post(resize))
        .route("/governance/circle/countback", post(countback))
        .route("/governance/circle/seats/{handle}/vacate", post(vacate))
        .route("/governance/elections/new", get(new_election_page))
        .route("/governance/elections", post(create_election))
        .route("/governance/elections/{id}", get(election_page))
        .route("/governance/elections/{id}/nominations", post(nominate))
        .route(
            "/governance/elections/{id}/nominations/{nid}/accept",
            post(accept),
        )
        .route(
            "/governance/elections/{id}/nominations/{nid}/withdraw",
            post(withdraw),
        )
        .route(
            "/governance/elections/{id}/ballot/{secret}",
            get(ballot_page).post(cast),
        )
        .route("/governance/elections/{id}/receipts", get(receipts))
        .route("/governance/elections/{id}/result", get(result_page))
        .route("/governance/elections/{id}/result.json", get(result_json))
        .route("/governance/elections/{id}/ballots.blt", get(ballots_blt))
        .route("/governance/elections/{id}/remind", post(remind))
        .route("/governance/elections/{id}/close", post(close))
        .route("/governance/motions", post(propose))
        .route("/governance/motions/{id}", get(motion_page))
        .route("/governance/motions/{id}/vote", post(vote))
}

/// Moves elections along; a failure is logged and the page still shows.
async fn tick(state: &AppState) {
    if let Err(err) = governance::tick(state).await {
        tracing::warn!(error = %err, "governance: moving elections along");
    }
}

fn when(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%-d %B %Y, %H:%M UTC").to_string())
        .unwrap_or_default()
}

fn person(handle: &str, name: &str) -> PersonRef {
    PersonRef {
        handle: handle.to_string(),
        display_name: name.to_string(),
    }
}

fn u32_of(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

fn election_row(e: &Election, now: i64) -> ElectionRow {
    let outcome = e.result_json.as_deref().and_then(|j| {
        let v: Value = serde_json::from_str(j).ok()?;
        let names: Vec<&str> = v["elected"]
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        Some(if e.quorum_met == Some(false) {
            "Quorum not met".to_string()
        } else {
            format!("Elected: {}", names.join(", "))
        })
    });
    ElectionRow {
        url: e.path(),
        title: e.title.clone(),
        constituency: e.constituency.to_string(),
        phase: e.phase(now).label().to_string(),
        method: e.method.long_name().to_string(),
        seats: u32_of(e.seats),
        when: format!(
            "voting {} – {}",
            date(e.voting_open_at),
            date(e.voting_close_at)
        ),
        outcome,
    }
}

/// Everything on `/governance`, with the forms as given.
async fn overview_view(
    state: &AppState,
    visitor: &Visitor,
    role_form: RoleForm,
    size_form: SizeForm,
    motion_form: MotionForm,
) -> Result<GovernanceView> {
    let db = &state.db;
    let me = visitor.passport();
    let (can_run, can_manage, is_steward) = match me {
        Some(p) => (
            governance::may_run_elections(db, p).await?,
            governance::may_set_roles(db, p).await?,
            governance::is_steward(db, p.id).await?,
        ),
        None => (false, false, false),
    };
    let seats = circle::seats(db).await?;
    let t = db.now();
    let mut countback = Vec::new();
    for c in [Constituency::Resident, Constituency::Worker] {
        if seats
            .iter()
            .any(|s| s.constituency == c && s.holder.is_none())
        {
            countback.push((c.to_string(), governance::constituency_key(c).to_string()));
        }
    }
    let mut numbers = [0u32; 2];
    let seat_views = seats
        .iter()
        .map(|s| {
            let side = usize::from(s.constituency == Constituency::Worker);
            numbers[side] += 1;
            let may_vacate = me.is_some_and(|p| {
                p.is_operator || s.holder.as_ref().is_some_and(|h| h.passport_id == p.id)
            });
            SeatView {
                constituency: s.constituency.to_string(),
                number: numbers[side],
                holder: s
                    .holder
                    .as_ref()
                    .map(|h| person(&h.handle, &h.display_name)),
                term: s.term_end.map(|end| {
                    if end <= t {
                        format!("term ended {}", date(end))
                    } else {
                        format!("term until {}", date(end))
                    }
                }),
                vacate_url: s
                    .holder
                    .as_ref()
                    .filter(|_| may_vacate)
                    .map(|h| format!("/governance/circle/seats/{}/vacate", h.handle)),
            }
        })
        .collect();
    let standing = motions::standing(db).await?;
    let b = standing.budget;
    Ok(GovernanceView {
        seats_per_constituency: u32_of(circle::size(db).await?),
        seats: seat_views,
        budget: BudgetView {
            infrastructure: b.infrastructure(),
            operations: b.operations(),
            patronage: b.patronage(),
            reserve: b.reserve(),
        },
        objectives: standing.objectives,
        elections: elections::list(db)
            .await?
            .iter()
            .map(|e| election_row(e, db.now()))
            .collect(),
        motions: motions::list(db)
            .await?
            .into_iter()
            .map(|m| MotionRow {
                url: format!("/governance/motions/{}", m.id),
                title: m.title,
                status: motion_status(m.passed).to_string(),
                proposed_by: m.proposed_by,
                created: date(m.created_at),
            })
            .collect(),
        workers: roll::workers(db)
            .await?
            .into_iter()
            .map(|(h, n, r)| WorkerRow {
                person: person(&h, &n),
                role: r,
            })
            .collect(),
        role_log: roll::role_log(db, 50)
            .await?
            .into_iter()
            .map(|r| RoleLogRow {
                person: person(&r.handle, &r.display_name),
                change: format!(
                    "{} \u{2192} {}",
                    r.old_role.as_deref().unwrap_or("none"),
                    r.new_role.as_deref().unwrap_or("none")
                ),
                by: r.changed_by,
                reason: r.reason,
                when: when(r.at),
            })
            .collect(),
        can_run_elections: can_run,
        can_manage,
        is_steward,
        countback: if can_manage { countback } else { Vec::new() },
        role_form,
        size_form,
        motion_form,
    })
}

fn motion_status(passed: Option<bool>) -> &'static str {
    match passed {
        None => "Open",
        Some(true) => "Passed",
        Some(false) => "Not passed",
    }
}

/// `GET /governance`: the Circle, the Budget, the Objectives, elections, motions, Workers.
pub async fn overview(State(state): State<AppState>, visitor: Visitor) -> Result<Response> {
    tick(&state).await;
    let size = SizeForm {
        seats: circle::size(&state.db).await?.to_string(),
        errors: FormErrors::new(),
    };
    let view = overview_view(
        &state,
        &visitor,
        RoleForm::default(),
        size,
        MotionForm::default(),
    )
    .await?;
    Ok(convene_web::pages::governance(&context(&state, &visitor), &view).into_response())
}

async fn require_manager(state: &AppState, visitor: &Visitor) -> Result<Passport> {
    let p = visitor.require()?.clone();
    if governance::may_set_roles(&state.db, &p).await? {
        Ok(p)
    } else {
        Err(AppError::Forbidden(
            "Only operators and stewards manage Workers and the Circle.",
        ))
    }
}

/// Re-renders the overview with a form's problems, or passes other errors on.
async fn overview_with(
    state: &AppState,
    visitor: &Visitor,
    err: AppError,
    forms: impl FnOnce(FormErrors) -> (RoleForm, SizeForm, MotionForm),
) -> Result<Response> {
    let errors = form_errors(err)?;
    let (role, size, motion) = forms(errors);
    let view = overview_view(state, visitor, role, size, motion).await?;
    Ok(invalid(convene_web::pages::governance(
        &context(state, visitor),
        &view,
    )))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RoleInput {
    handle: String,
    role: String,
    reason: String,
}

/// `POST /governance/workers`: marks (or unmarks) a Worker, logged.
pub async fn set_role(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(input): Form<RoleInput>,
) -> Result<Response> {
    let by = require_manager(&state, &visitor).await?;
    let result = match roll::WorkerRole::parse_optional(&input.role) {
        Ok(role) => roll::set_worker_role(&state.db, &by, &input.handle, role, &input.reason).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(change) => Ok(redirect_with(
            &state,
            "/governance",
            "success",
            &format!(
                "@{} is now {}.",
                change.handle,
                change
                    .new_role
                    .as_deref()
                    .unwrap_or("without a Worker role")
            ),
        )),
        Err(err) => {
            overview_with(&state, &visitor, err, |errors| {
                (
                    RoleForm {
                        handle: input.handle.clone(),
                        role: input.role.clone(),
                        reason: input.reason.clone(),
                        errors,
                    },
                    SizeForm::default(),
                    MotionForm::default(),
                )
            })
            .await
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SizeInput {
    seats: String,
    constituency: String,
}

/// `POST /governance/circle/size`: resizes both constituencies at once.
pub async fn resize(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(input): Form<SizeInput>,
) -> Result<Response> {
    require_manager(&state, &visitor).await?;
    let result = match input.seats.trim().parse::<i64>() {
        Ok(n) => circle::resize(&state.db, n).await,
        Err(_) => Err(AppError::invalid("seats", "Give a whole number of seats.")),
    };
    match result {
        Ok(()) => Ok(redirect_with(
            &state,
            "/governance",
            "success",
            "The Circle is resized.",
        )),
        Err(err) => {
            overview_with(&state, &visitor, err, |errors| {
                (
                    RoleForm::default(),
                    SizeForm {
                        seats: input.seats.clone(),
                        errors,
                    },
                    MotionForm::default(),
                )
            })
            .await
        }
    }
}

/// `POST /governance/circle/countback`: fills a vacancy from the last election's ballots.
pub async fn countback(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(input): Form<SizeInput>,
) -> Result<Response> {
    require_manager(&state, &visitor).await?;
    let result = match governance::parse_constituency(&input.constituency) {
        Ok(c) => tally::countback(&state.db, c).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(name) => Ok(redirect_with(
            &state,
            "/governance",
            "success",
            &format!("{name} takes the vacant seat by countback."),
        )),
        Err(err) => {
            let seats = circle::size(&state.db).await?.to_string();
            overview_with(&state, &visitor, err, |errors| {
                (
                    RoleForm::default(),
                    SizeForm { seats, errors },
                    MotionForm::default(),
                )
            })
            .await
        }
    }
}

/// `POST /governance/circle/seats/{handle}/vacate`: the holder resigns, or an operator
/// removes them. The vacancy stays with the seat's constituency.
pub async fn vacate(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(handle): Path<String>,
) -> Result<Response> {
    let p = visitor.require()?;
    let handle = crate::domain::values::Handle::parse(&handle).map_err(|_| AppError::NotFound)?;
    let holder = crate::domain::passports::by_handle(&state.db, &handle)
        .await?
        .ok_or(AppError::NotFound)?;
    if !(p.is_operator || p.id == holder.id) {
        return Err(AppError::Forbidden(
            "Only the Representative themself or an operator vacates a seat.",
        ));
    }
    let c = circle::vacate(&state.db, holder.id).await?;
    Ok(redirect_with(
        &state,
        "/governance",
        "success",
        &format!(
            "The {c} seat of @{} is vacant; fill it by countback or a by-election.",
            holder.handle
        ),
    ))
}

fn datetime_local(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M").to_string())
        .unwrap_or_default()
}

fn parse_local(input: &str) -> Option<i64> {
    let s = input.trim();
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
        .map(|d| d.and_utc().timestamp())
}

async fn require_runner(state: &AppState, visitor: &Visitor) -> Result<Passport> {
    let p = visitor.require()?.clone();
    if governance::may_run_elections(&state.db, &p).await? {
        Ok(p)
    } else {
        Err(AppError::Forbidden(
            "Only stewards run elections (operators do until the first steward is seated).",
        ))
    }
}

/// `GET /governance/elections/new`
pub async fn new_election_page(
    State(state): State<AppState>,
    visitor: Visitor,
) -> Result<Response> {
    require_runner(&state, &visitor).await?;
    let t = state.db.now() / 3600 * 3600 + 3600;
    let form = ElectionForm {
        constituency: "resident".into(),
        seats: "1".into(),
        method: "stv".into(),
        nominations_open: datetime_local(t),
        nominations_close: datetime_local(t + 7 * 86400),
        voting_open: datetime_local(t + 7 * 86400),
        voting_close: datetime_local(t + 14 * 86400),
        quorum: "0".into(),
        ..ElectionForm::default()
    };
    Ok(convene_web::pages::election_new(&context(&state, &visitor), &form).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ElectionInput {
    title: String,
    constituency: String,
    seats: String,
    method: String,
    nominations_open: String,
    nominations_close: String,
    voting_open: String,
    voting_close: String,
    quorum: String,
    by_election: Option<String>,
}

/// `POST /governance/elections`
pub async fn create_election(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(input): Form<ElectionInput>,
) -> Result<Response> {
    let by = require_runner(&state, &visitor).await?;
    let mut errors = Vec::new();
    let mut time = |field: &'static str, value: &str| {
        parse_local(value).unwrap_or_else(|| {
            errors.push(FieldError {
                field,
                message: "Give a date and time (UTC).".into(),
            });
            0
        })
    };
    let new = NewElection {
        title: input.title.clone(),
        constituency: input.constituency.clone(),
        seats: input.seats.trim().parse().unwrap_or(0),
        method: input.method.clone(),
        nominations_open_at: time("nominations_open", &input.nominations_open),
        nominations_close_at: time("nominations_close", &input.nominations_close),
        voting_open_at: time("voting_open", &input.voting_open),
        voting_close_at: time("voting_close", &input.voting_close),
        quorum_percent: if input.quorum.trim().is_empty() {
            0
        } else {
            input.quorum.trim().parse().unwrap_or(-1)
        },
        by_election: input.by_election.is_some(),
    };
    let result = if errors.is_empty() {
        elections::create(&state.db, &by, &new).await
    } else {
        Err(AppError::Invalid(errors))
    };
    match result {
        Ok(e) => {
            tick(&state).await;
            Ok(redirect_with(
                &state,
                &e.path(),
                "success",
                "The election is created.",
            ))
        }
        Err(err) => {
            let errors = form_errors(err)?;
            let form = ElectionForm {
                title: input.title,
                constituency: input.constituency,
                seats: input.seats,
                method: input.method,
                nominations_open: input.nominations_open,
                nominations_close: input.nominations_close,
                voting_open: input.voting_open,
                voting_close: input.voting_close,
                quorum: input.quorum,
                by_election: input.by_election.is_some(),
                errors,
            };
            Ok(invalid(convene_web::pages::election_new(
                &context(&state, &visitor),
                &form,
            )))
        }
    }
}

async fn election_view(
    state: &AppState,
    visitor: &Visitor,
    e: &Election,
    nominate_form: NominateForm,
) -> Result<ElectionView> {
    let t = state.db.now();
    let phase = e.phase(t);
    let me = visitor.passport();
    let is_admin = match me {
        Some(p) => governance::may_run_elections(&state.db, p).await?,
        None => false,
    };
    let candidates = elections::candidates(&state.db, e.id)
        .await?
        .into_iter()
        .map(|c| {
            let mine = me.is_some_and(|p| p.id == c.passport_id);
            let status = if c.withdrawn {
                "Withdrawn"
            } else if c.accepted {
                "Standing"
            } else if e.roll_frozen_at.is_some() || phase != Phase::Nominating {
                "Did not accept"
            } else {
                "Awaiting acceptance"
            };
            CandidateView {
                person: person(&c.handle, &c.display_name),
                statement: c.statement.clone(),
                nominated_by: c.nominated_by.clone().filter(|h| *h != c.handle),
                status: status.to_string(),
                ballot_number: c.ballot_number.map(u32_of),
                accept_url: (mine && !c.accepted && !c.withdrawn && phase == Phase::Nominating)
                    .then(|| format!("{}/nominations/{}/accept", e.path(), c.nomination_id)),
                withdraw_url: (mine
                    && !c.withdrawn
                    && phase != Phase::Closed
                    && phase != Phase::Counting)
                    .then(|| format!("{}/nominations/{}/withdraw", e.path(), c.nomination_id)),
            }
        })
        .collect();
    let turnout = if e.roll_frozen_at.is_some() {
        Some(voting::turnout(&state.db, e.id).await?)
    } else {
        None
    };
    let elected = e
        .result_json
        .as_deref()
        .and_then(|j| serde_json::from_str::<Value>(j).ok())
        .filter(|_| e.quorum_met == Some(true))
        .and_then(|v| {
            v["elected"].as_array().map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
        })
        .unwrap_or_default();
    let delivery = if is_admin {
        notices::delivery(&state.db, e.id)
            .await?
            .into_iter()
            .map(|d| DeliveryRow {
                notice: d.label.to_string(),
                sent: d.sent,
                pending: d.pending,
                failed: d.failed,
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(ElectionView {
        url: e.path(),
        title: e.title.clone(),
        constituency: e.constituency.to_string(),
        method: e.method.long_name().to_string(),
        seats: u32_of(e.seats),
        phase: phase.label().to_string(),
        by_election: e.by_election,
        timeline: vec![
            ("Nominations open".into(), when(e.nominations_open_at)),
            ("Nominations close".into(), when(e.nominations_close_at)),
            ("Voting opens".into(), when(e.voting_open_at)),
            ("Voting closes".into(), when(e.voting_close_at)),
        ],
        quorum_percent: u32_of(e.quorum_percent),
        seed: e.seed.map(|s| s.to_string()),
        turnout,
        candidates,
        nominate_url: (me.is_some() && phase == Phase::Nominating)
            .then(|| format!("{}/nominations", e.path())),
        nominate_form,
        signed_in: me.is_some(),
        is_admin,
        delivery,
        remind_url: (is_admin && phase == Phase::Voting).then(|| format!("{}/remind", e.path())),
        close_url: (is_admin && phase == Phase::Counting).then(|| format!("{}/close", e.path())),
        receipts_url: format!("{}/receipts", e.path()),
        result_url: e
            .result_json
            .as_ref()
            .map(|_| format!("{}/result", e.path())),
        blt_url: (e.closed_at.is_some() && e.result_json.is_some())
            .then(|| format!("{}/ballots.blt", e.path())),
        elected,
        notes: e.result_error.clone(),
    })
}

/// `GET /governance/elections/{id}`
pub async fn election_page(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<i64>,
) -> Result<Response> {
    tick(&state).await;
    let e = elections::get(&state.db, id).await?;
    let view = election_view(&state, &visitor, &e, NominateForm::default()).await?;
    Ok(convene_web::pages::election(&context(&state, &visitor), &view).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NominateInput {
    handle: String,
    statement: String,
}

/// `POST /governance/elections/{id}/nominations`: stand, or nominate someone on the roll.
pub async fn nominate(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<i64>,
    Form(input): Form<NominateInput>,
) -> Result<Response> {
    let p = visitor.require()?;
    tick(&state).await;
    let e = elections::get(&state.db, id).await?;
    match elections::nominate(&state, &e, p, &input.handle, &input.statement).await {
        Ok(c) => {
            let message = if c.accepted {
                "You are a candidate.".to_string()
            } else {
                format!("@{} is nominated; they stand once they accept.", c.handle)
            };
            Ok(redirect_with(&state, &e.path(), "success", &message))
        }
        Err(err) => {
            let errors = form_errors(err)?;
            let form = NominateForm {
                handle: input.handle,
                statement: input.statement,
                errors,
            };
            let view = election_view(&state, &visitor, &e, form).await?;
            Ok(invalid(convene_web::pages::election(
                &context(&state, &visitor),
                &view,
            )))
        }
    }
}

/// `POST /governance/elections/{id}/nominations/{nid}/accept`
pub async fn accept(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((id, nid)): Path<(i64, i64)>,
    Form(input): Form<NominateInput>,
) -> Result<Response> {
    let p = visitor.require()?;
    tick(&state).await;
    let e = elections::get(&state.db, id).await?;
    elections::accept(&state, &e, nid, p, &input.statement).await?;
    Ok(redirect_with(
        &state,
        &e.path(),
        "success",
        "You accepted: you are a candidate.",
    ))
}

/// `POST /governance/elections/{id}/nominations/{nid}/withdraw`
pub async fn withdraw(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((id, nid)): Path<(i64, i64)>,
) -> Result<Response> {
    let p = visitor.require()?;
    tick(&state).await;
    let e = elections::get(&state.db, id).await?;
    elections::withdraw(&state.db, &e, nid, p).await?;
    Ok(redirect_with(
        &state,
        &e.path(),
        "success",
        "You have withdrawn.",
    ))
}

fn ballot_view(
    access: &voting::BallotAccess,
    secret: &str,
    submitted: Vec<(String, String)>,
    errors: FormErrors,
) -> BallotView {
    let e = &access.election;
    BallotView {
        election_title: e.title.clone(),
        election_url: e.path(),
        action: voting::ballot_path(e.id, secret),
        kind: match e.method {
            Method::Approval => BallotKind::Approval,
            Method::Plurality => BallotKind::Plurality,
            _ => BallotKind::Ranked,
        },
        method: e.method.long_name().to_string(),
        seats: u32_of(e.seats),
        closes: when(e.voting_close_at),
        candidates: access
            .candidates
            .iter()
            .map(|c| BallotCandidate {
                number: u32_of(c.ballot_number.unwrap_or(0)),
                name: c.display_name.clone(),
                handle: c.handle.clone(),
                statement: c.statement.clone(),
            })
            .collect(),
        submitted,
        errors,
    }
}

/// Secret links must not leak through the Referer header or a shared cache.
fn private(markup: maud::Markup, status: axum::http::StatusCode) -> Response {
    (
        status,
        [
            (REFERRER_POLICY, "no-referrer"),
            (CACHE_CONTROL, "no-store"),
        ],
        markup,
    )
        .into_response()
}

/// `GET /governance/elections/{id}/ballot/{secret}`: the ballot behind a voter's link.
pub async fn ballot_page(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((id, secret)): Path<(i64, String)>,
) -> Result<Response> {
    tick(&state).await;
    let access = voting::open_ballot(&state.db, id, &secret).await?;
    let view = ballot_view(&access, &secret, Vec::new(), FormErrors::new());
    Ok(private(
        convene_web::pages::ballot(&context(&state, &visitor), &view),
        axum::http::StatusCode::OK,
    ))
}

/// `POST /governance/elections/{id}/ballot/{secret}`: casts the ballot and shows the receipt.
pub async fn cast(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((id, secret)): Path<(i64, String)>,
    body: Bytes,
) -> Result<Response> {
    tick(&state).await;
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .filter(|(k, _)| k != "csrf")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    match voting::cast(&state, id, &secret, &form).await {
        Ok(receipt) => {
            let e = elections::get(&state.db, id).await?;
            let view = ReceiptView {
                election_title: e.title.clone(),
                election_url: e.path(),
                receipt,
                receipts_url: format!("{}/receipts", e.path()),
            };
            Ok(private(
                convene_web::pages::ballot_receipt(&context(&state, &visitor), &view),
                axum::http::StatusCode::OK,
            ))
        }
        Err(AppError::Invalid(errors)) => {
            let access = voting::open_ballot(&state.db, id, &secret).await?;
            let mut form_errors = FormErrors::new();
            for e in errors {
                form_errors.push(e.field, e.message);
            }
            let view = ballot_view(&access, &secret, form, form_errors);
            Ok(private(
                convene_web::pages::ballot(&context(&state, &visitor), &view),
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            ))
        }
        Err(err) => Err(err),
    }
}

/// `GET /governance/elections/{id}/receipts`: the receipts of all ballots received, once
/// voting has closed (a live list would let an onlooker match receipts to the moment people
/// voted).
pub async fn receipts(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<i64>,
) -> Result<Response> {
    tick(&state).await;
    let e = elections::get(&state.db, id).await?;
    let closed = e.closed_at.is_some();
    let view = ReceiptsView {
        election_title: e.title.clone(),
        election_url: e.path(),
        receipts: if closed {
            voting::receipts(&state.db, id).await?
        } else {
            Vec::new()
        },
        closed,
        blt_url: (closed && e.result_json.is_some()).then(|| format!("{}/ballots.blt", e.path())),
    };
    Ok(convene_web::pages::receipts(&context(&state, &visitor), &view).into_response())
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn event_text(ev: &Value) -> String {
    let name = text_of(&ev["name"]);
    match ev["event"].as_str().unwrap_or("") {
        "elected" => format!("{name} is elected with {}.", text_of(&ev["votes"])),
        "excluded" => format!("{name} is excluded with {}.", text_of(&ev["votes"])),
        "surplus_transferred" => format!(
            "The surplus of {name} ({}) is transferred: {} to continuing candidates, {} non-transferable, {} lost to rounding.",
            text_of(&ev["surplus"]),
            text_of(&ev["transferred"]),
            text_of(&ev["non_transferable"]),
            text_of(&ev["rounding"]),
        ),
        "tie_broken" => {
            let names: Vec<String> = ev["names"]
                .as_array()
                .map(|a| a.iter().map(text_of).collect())
                .unwrap_or_default();
            let rule = &ev["rule"];
            let how = match rule["by"].as_str() {
                Some("earlier_round") => {
                    format!("by the votes at round {}", text_of(&rule["round"]))
                }
                Some("lot") => format!(
                    "by lot (draw {} from the seed, value {})",
                    text_of(&rule["draw_number"]),
                    text_of(&rule["draw"])
                ),
                _ => "by the rules".to_string(),
            };
            format!(
                "Tie ({}) between {}: {name} chosen {how}.",
                text_of(&ev["purpose"]),
                names.join(", ")
            )
        }
        other => format!("{other}: {name}"),
    }
}

/// `GET /governance/elections/{id}/result`: every round, transfer and tie decision.
pub async fn result_page(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<i64>,
) -> Result<Response> {
    tick(&state).await;
    let e = elections::get(&state.db, id).await?;
    let json = e.result_json.as_deref().ok_or(AppError::NotFound)?;
    let v: Value = serde_json::from_str(json).map_err(anyhow::Error::from)?;
    let strings = |key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .map(|a| a.iter().map(text_of).collect())
            .unwrap_or_default()
    };
    let mut notes = strings("notes");
    if let Some(n) = &e.result_error {
        notes.push(n.clone());
    }
    let rounds = v["rounds"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| RoundView {
                    number: u32::try_from(r["number"].as_u64().unwrap_or(0)).unwrap_or(0),
                    description: text_of(&r["description"]),
                    quota: r.get("quota").filter(|q| !q.is_null()).map(text_of),
                    votes: r["votes"]
                        .as_array()
                        .map(|a| a.iter().map(text_of).collect())
                        .unwrap_or_default(),
                    non_transferable: text_of(&r["non_transferable"]),
                    events: r["events"]
                        .as_array()
                        .map(|a| a.iter().map(event_text).collect())
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let pct = if e.roll_size > 0 {
        e.ballots_cast * 100 / e.roll_size
    } else {
        0
    };
    let view = ResultView {
        election_title: e.title.clone(),
        election_url: e.path(),
        method: e.method.long_name().to_string(),
        seats: u32_of(e.seats),
        seed: text_of(&v["seed"]),
        valid_votes: text_of(&v["valid_votes"]),
        invalid_votes: text_of(&v["invalid_votes"]),
        quota: v.get("quota").filter(|q| !q.is_null()).map(text_of),
        turnout: format!("{} of {} ({pct}%)", e.ballots_cast, e.roll_size),
        candidates: strings("candidates"),
        elected: if e.quorum_met == Some(false) {
            Vec::new()
        } else {
            strings("elected")
        },
        rounds,
        notes,
        receipts_url: format!("{}/receipts", e.path()),
        blt_url: format!("{}/ballots.blt", e.path()),
        json_url: format!("{}/result.json", e.path()),
        text: e.result_text.clone().unwrap_or_default(),
    };
    Ok(convene_web::pages::election_result(&context(&state, &visitor), &view).into_response())
}

/// `GET /governance/elections/{id}/result.json`: the count as the governance core reports it
/// (the same shape as `convene tally --json`).
pub async fn result_json(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Response> {
    tick(&state).await;
    let e = elections::get(&state.db, id).await?;
    let json = e.result_json.ok_or(AppError::NotFound)?;
    Ok(([(CONTENT_TYPE, "application/json")], json).into_response())
}

/// `GET /governance/elections/{id}/ballots.blt`: the anonymised ballots, for recounting with
/// `convene tally` or any other BLT tool.
pub async fn ballots_blt(State(state): State<AppState>, Path(id): Path<i64>) -> Result<Response> {
    tick(&state).await;
    let e = elections::get(&state.db, id).await?;
    let text = tally::blt_file(&state.db, &e).await?;
    Ok((
        [
            (CONTENT_TYPE, "text/plain; charset=utf-8".to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"election-{id}.blt\""),
            ),
        ],
        text,
    )
        .into_response())
}

/// `POST /governance/elections/{id}/remind`: a fresh link to everyone who has not voted.
pub async fn remind(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<i64>,
) -> Result<Response> {
    require_runner(&state, &visitor).await?;
    tick(&state).await;
    let e = elections::get(&state.db, id).await?;
    let n = voting::remind(&state, &e).await?;
    Ok(redirect_with(
        &state,
        &e.path(),
        "success",
        &format!("Reminders are on their way to {n} people who have not voted."),
    ))
}

/// `POST /governance/elections/{id}/close`: closes and counts once the voting time is over.
pub async fn close(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<i64>,
) -> Result<Response> {
    require_runner(&state, &visitor).await?;
    let e = elections::get(&state.db, id).await?;
    tally::close(&state, &e).await?;
    Ok(redirect_with(
        &state,
        &format!("{}/result", e.path()),
        "success",
        "The election is closed and counted.",
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct MotionInput {
    kind: String,
    infrastructure: String,
    operations: String,
    patronage: String,
    objectives: String,
}

/// `POST /governance/motions`: a steward proposes a new Budget or new Objectives.
pub async fn propose(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(input): Form<MotionInput>,
) -> Result<Response> {
    let p = visitor.require()?;
    let pct = |field: &'static str, v: &str| {
        v.trim()
            .parse::<i64>()
            .map_err(|_| AppError::invalid(field, "Give a whole percentage from 0 to 100."))
    };
    let result = match input.kind.as_str() {
        "budget" => match (
            pct("infrastructure", &input.infrastructure),
            pct("operations", &input.operations),
            pct("patronage", &input.patronage),
        ) {
            (Ok(i), Ok(o), Ok(pa)) => motions::propose_budget(&state.db, p, i, o, pa).await,
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
        },
        "objectives" => motions::propose_objectives(&state.db, p, &input.objectives).await,
        _ => Err(AppError::BadRequest("Unknown kind of motion.".into())),
    };
    match result {
        Ok(id) => Ok(redirect_with(
            &state,
            &format!("/governance/motions/{id}"),
            "success",
            "The motion is proposed; stewards vote on it here.",
        )),
        Err(err) => {
            overview_with(&state, &visitor, err, |errors| {
                (
                    RoleForm::default(),
                    SizeForm::default(),
                    MotionForm {
                        infrastructure: input.infrastructure.clone(),
                        operations: input.operations.clone(),
                        patronage: input.patronage.clone(),
                        objectives: input.objectives.clone(),
                        errors,
                    },
                )
            })
            .await
        }
    }
}

/// `GET /governance/motions/{id}`
pub async fn motion_page(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<i64>,
) -> Result<Response> {
    let m = motions::get(&state.db, id).await?;
    let voted = visitor
        .passport()
        .is_some_and(|p| m.votes.iter().any(|v| v.handle == p.handle.as_str()));
    let steward = match visitor.passport() {
        Some(p) => governance::is_steward(&state.db, p.id).await?,
        None => false,
    };
    let mut proposal = Vec::new();
    if let Some(b) = &m.budget {
        proposal.push(format!("Infrastructure {}%", b.infrastructure()));
        proposal.push(format!("Operations {}%", b.operations()));
        proposal.push(format!("Patronage {}%", b.patronage()));
        proposal.push(format!("Reserve {}%", b.reserve()));
    }
    if let Some(list) = &m.objectives {
        proposal.extend(list.iter().cloned());
    }
    let decision = m.decision.as_ref().map(|d| {
        format!(
            "Residents {} of {} seats for, Workers {} of {} seats for; {} needed on each side: {}.",
            text_of(&d["resident_for"]),
            text_of(&d["resident_seats"]),
            text_of(&d["worker_for"]),
            text_of(&d["worker_seats"]),
            text_of(&d["needed"]),
            if m.passed == Some(true) {
                "passed"
            } else {
                "not passed"
            }
        )
    });
    let view = MotionView {
        title: m.title.clone(),
        status: motion_status(m.passed).to_string(),
        proposed_by: m.proposed_by.clone(),
        created: date(m.created_at),
        proposal,
        votes: m
            .votes
            .iter()
            .map(|v| {
                (
                    format!("{} @{}", v.display_name, v.handle),
                    v.constituency.to_string(),
                    v.position.clone(),
                )
            })
            .collect(),
        vote_url: (steward && !voted && m.decided_at.is_none())
            .then(|| format!("/governance/motions/{id}/vote")),
        decision,
    };
    Ok(convene_web::pages::motion(&context(&state, &visitor), &view).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct VoteInput {
    position: String,
}

/// `POST /governance/motions/{id}/vote`: a steward's vote, once.
pub async fn vote(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<i64>,
    Form(input): Form<VoteInput>,
) -> Result<Response> {
    let p = visitor.require()?;
    let position = motions::parse_position(&input.position)?;
    let m = motions::vote(&state.db, id, p, position).await?;
    let message = match m.passed {
        Some(true) => "Your vote is recorded. The motion has passed and is in force.",
        Some(false) => "Your vote is recorded. The motion cannot pass any more.",
        None => "Your vote is recorded.",
    };
    Ok(redirect_with(
        &state,
        &format!("/governance/motions/{id}"),
        "success",
        message,
    ))
}
