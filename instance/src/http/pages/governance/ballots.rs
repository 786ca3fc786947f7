//! Voting: the secret ballot behind a voter's link, casting it and the receipt; the list of
//! receipts once voting has closed; and the anonymised ballots as a BLT file.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, REFERRER_POLICY};
use axum::response::{IntoResponse, Response};
use convene_governance::Method;
use convene_web::governance_view::{
    BallotCandidate, BallotKind, BallotView, ReceiptView, ReceiptsView,
};
use convene_web::routes;
use convene_web::view::FormErrors;

use super::{tick, u32_of, when};
use crate::app::AppState;
use crate::error::{AppError, Result};
use crate::governance::{elections, tally, voting};
use crate::http::pages::context;
use crate::http::visitor::Visitor;

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
        action: routes::ballot(e.id, secret),
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
                receipts_url: routes::receipts(e.id),
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
        blt_url: (closed && e.result_json.is_some()).then(|| routes::ballots_blt(e.id)),
    };
    Ok(convene_web::pages::receipts(&context(&state, &visitor), &view).into_response())
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
