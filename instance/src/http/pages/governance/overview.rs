//! `/governance`: the Circle of Stewards, the Budget, the Objectives, elections, motions and
//! Workers, with the steward's forms. The posts of other files re-render it with their errors.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use convene_governance::circle::Constituency;
use convene_web::governance_view::{
    BudgetView, GovernanceView, MotionForm, MotionRow, RoleForm, RoleLogRow, SeatView, SizeForm,
    WorkerRow,
};
use convene_web::routes;
use convene_web::view::FormErrors;

use super::{elections, motions, person, tick, u32_of, when};
use crate::app::AppState;
use crate::error::{AppError, Result};
use crate::governance::{self, circle, roll};
use crate::http::pages::{context, date, form_errors, invalid};
use crate::http::visitor::Visitor;

/// Everything on `/governance`, with the forms as given.
pub(super) async fn overview_view(
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
                    .map(|h| routes::seat_vacate(&h.handle)),
            }
        })
        .collect();
    let standing = crate::governance::motions::standing(db).await?;
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
        elections: crate::governance::elections::list(db)
            .await?
            .iter()
            .map(|e| elections::election_row(e, db.now()))
            .collect(),
        motions: crate::governance::motions::list(db)
            .await?
            .into_iter()
            .map(|m| MotionRow {
                url: routes::motion(m.id),
                title: m.title,
                status: motions::motion_status(m.passed).to_string(),
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

pub(super) async fn overview_with(
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
