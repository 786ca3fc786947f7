//! The partner policy page for operators (`/admin/federation`): the mode, partners and
//! blocked instances with what their NodeInfo said and their delivery queue. The same use
//! cases as `convene admin federation …` (`core::partners`).

use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use convene_web::network_view::{FederationAdminView, PartnerRow};
use convene_web::routes;
use convene_web::view::FormErrors;
use serde::Deserialize;

use super::{context, form_errors, invalid, redirect_with};
use crate::app::AppState;
use crate::core::{partners, passport_blocks};
use crate::error::{AppError, Result};
use crate::http::visitor::Visitor;
use crate::jobs;

fn operator(visitor: &Visitor) -> Result<()> {
    if !visitor.require()?.is_operator {
        return Err(AppError::Forbidden(
            "Only the instance's operators set whom it federates with.",
        ));
    }
    Ok(())
}

fn moment(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%-d %b %Y, %H:%M UTC").to_string())
        .unwrap_or_default()
}

async fn view(state: &AppState, domain: String, errors: FormErrors) -> Result<FederationAdminView> {
    let policy = partners::policy(&state.db).await?;
    let queue = jobs::status::status(&state.db).await?;
    let mut view = FederationAdminView {
        mode: partners::mode_name(policy.mode).to_owned(),
        domain,
        errors,
        ..FederationAdminView::default()
    };
    view.blocked_passports = passport_blocks::list(&state.db)
        .await?
        .into_iter()
        .map(|address| {
            let unblock = routes::admin_unblock_passport(&address);
            (address, unblock)
        })
        .collect();
    for partner in partners::list(&state.db).await? {
        let destination = queue
            .destinations
            .iter()
            .find(|d| d.destination == partner.domain);
        let row = PartnerRow {
            check_url: routes::admin_federation_action("check", &partner.domain),
            remove_url: routes::admin_federation_action("remove", &partner.domain),
            software: partner.software,
            version: partner.version,
            reachable: partner.reachable,
            check_note: partner.check_note,
            checked: partner.checked_at.map(moment),
            queue_state: destination.map(|d| d.state.as_str().to_owned()),
            pending: destination.map_or(0, |d| d.pending),
            last_error: destination.and_then(|d| d.last_error.clone()),
            domain: partner.domain,
        };
        if partner.status == "blocked" {
            view.blocked.push(row);
        } else {
            view.partners.push(row);
        }
    }
    Ok(view)
}

/// `GET /admin/federation` (operators)
pub async fn page(State(state): State<AppState>, visitor: Visitor) -> Result<Response> {
    operator(&visitor)?;
    let view = view(&state, String::new(), FormErrors::new()).await?;
    Ok(convene_web::pages::federation_admin(&context(&state, &visitor), &view).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ModeInput {
    mode: String,
}

/// `POST /admin/federation/policy` (operators)
pub async fn set_mode(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(input): Form<ModeInput>,
) -> Result<Response> {
    operator(&visitor)?;
    let mode = partners::parse_mode(&input.mode)?;
    partners::set_mode(&state.core, mode).await?;
    Ok(redirect_with(
        &state,
        routes::ADMIN_FEDERATION,
        "success",
        &format!("Federation policy: {}.", partners::mode_name(mode)),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PartnerInput {
    domain: String,
    /// `allow` or `block`.
    action: String,
}

/// `POST /admin/federation/partners` (operators): adds a partner (reading its NodeInfo) or
/// blocks an instance (its follows and its Spaces' follows from here go).
pub async fn add(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(input): Form<PartnerInput>,
) -> Result<Response> {
    operator(&visitor)?;
    let result = match input.action.as_str() {
        "block" => partners::block(&state.core, &input.domain)
            .await
            .map(|b| {
                format!(
                    "{} is blocked; {} follow(s) of Spaces here, {} membership(s) and {} Space(s) followed from here removed.",
                    b.domain, b.follows_removed, b.memberships_removed, b.spaces_forgotten
                )
            }),
        _ => match partners::allow(&state.core, &input.domain).await {
            Ok(domain) => partners::check(&state.core, &state.federation.client, &domain)
                .await
                .map(|p| match (p.reachable, p.software) {
                    (Some(true), Some(software)) => {
                        format!("{domain} is a partner; it runs {software}.")
                    }
                    _ => format!("{domain} is a partner, but its NodeInfo could not be read."),
                }),
            Err(err) => Err(err),
        },
    };
    match result {
        Ok(message) => Ok(redirect_with(
            &state,
            routes::ADMIN_FEDERATION,
            "success",
            &message,
        )),
        Err(err) => {
            let errors = form_errors(err)?;
            let view = view(&state, input.domain, errors).await?;
            Ok(invalid(convene_web::pages::federation_admin(
                &context(&state, &visitor),
                &view,
            )))
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DomainQuery {
    domain: String,
}

/// `POST /admin/federation/check?domain=` (operators): reads the instance's NodeInfo again.
pub async fn check(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(query): Query<DomainQuery>,
) -> Result<Response> {
    operator(&visitor)?;
    let partner = partners::check(&state.core, &state.federation.client, &query.domain).await?;
    let message = if partner.reachable == Some(true) {
        format!("{} answered.", partner.domain)
    } else {
        format!("{} did not answer.", partner.domain)
    };
    Ok(redirect_with(
        &state,
        routes::ADMIN_FEDERATION,
        "info",
        &message,
    ))
}

/// `POST /admin/federation/remove?domain=` (operators): takes the instance off both lists.
pub async fn remove(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(query): Query<DomainQuery>,
) -> Result<Response> {
    operator(&visitor)?;
    partners::unblock(&state.core, &query.domain).await?;
    Ok(redirect_with(
        &state,
        routes::ADMIN_FEDERATION,
        "info",
        &format!("{} is off the lists.", query.domain.trim()),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PassportInput {
    address: String,
}

/// `POST /admin/federation/passports` (operators): blocks one Passport of another instance.
pub async fn block_passport(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(input): Form<PassportInput>,
) -> Result<Response> {
    operator(&visitor)?;
    match passport_blocks::block(&state.core, &input.address).await {
        Ok(blocked) => Ok(redirect_with(
            &state,
            routes::ADMIN_FEDERATION,
            "success",
            &format!(
                "{} is blocked; {} membership(s) ended{}.",
                blocked.address,
                blocked.memberships_removed,
                if blocked.media_ended > 0 {
                    ", and their media ended"
                } else {
                    ""
                }
            ),
        )),
        Err(err) => {
            let errors = form_errors(err)?;
            let mut view = view(&state, String::new(), errors).await?;
            view.passport_address = input.address;
            Ok(invalid(convene_web::pages::federation_admin(
                &context(&state, &visitor),
                &view,
            )))
        }
    }
}

/// `POST /admin/federation/passports/unblock?address=` (operators)
pub async fn unblock_passport(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(input): Query<PassportInput>,
) -> Result<Response> {
    operator(&visitor)?;
    let was_blocked = passport_blocks::unblock(&state.core, &input.address)
        .await
        .map_err(|_| AppError::BadRequest("That is not a Passport's address.".into()))?;
    Ok(redirect_with(
        &state,
        routes::ADMIN_FEDERATION,
        "info",
        &if was_blocked {
            format!("{} is no longer blocked.", input.address.trim())
        } else {
            format!("{} was not blocked.", input.address.trim())
        },
    ))
}
