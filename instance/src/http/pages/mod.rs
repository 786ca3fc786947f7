//! Server-rendered pages: the handlers behind every URL of the web UI.
//!
//! Each handler loads what it needs through [`crate::domain`], maps it into a view model of the
//! `web` crate and renders it. Forms that fail validation are shown again with the person's
//! input and the problems inline (status 422); successful posts redirect (303) with a flash.

pub(crate) mod account;
pub(crate) mod auth;
mod federation_admin;
pub mod gathering;
pub(crate) mod governance;
mod network;
mod people;
mod queue;
pub(crate) mod rooms;
pub(crate) mod spaces;
mod visits;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use convene_web::view::{self, FormErrors, NavUser, PageContext};

use super::visitor::{self, Visitor};
use crate::app::AppState;
use crate::domain::spaces::Role;
use crate::error::{AppError, Result};
use crate::http::error::ErrorInfo;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(spaces::landing))
        .route("/signup", get(auth::signup_page).post(auth::signup))
        .route("/signin", get(auth::signin_page).post(auth::signin))
        .route("/verify", get(auth::verify_page).post(auth::verify))
        .route("/signout", post(auth::signout))
        .route("/me", get(account::page).post(account::update))
        .route(
            "/me/tokens",
            get(account::tokens).post(account::create_token),
        )
        .route("/me/tokens/{id}/revoke", post(account::revoke_token))
        .route("/people/{handle}", get(people::show))
        .route("/spaces/new", get(spaces::new_page))
        .route("/spaces", post(spaces::create))
        .route("/spaces/{space}", get(spaces::show))
        .route(
            "/spaces/{space}/edit",
            get(spaces::edit_page).post(spaces::edit),
        )
        .route("/spaces/{space}/members", get(spaces::members))
        .route("/spaces/{space}/invitations", post(spaces::invite))
        .route(
            "/spaces/{space}/invitations/{id}/revoke",
            post(spaces::revoke_invitation),
        )
        .route(
            "/spaces/{space}/members/{handle}/remove",
            post(spaces::remove_member),
        )
        .route("/spaces/{space}/leave", post(spaces::leave))
        .route(
            "/spaces/{space}/follow-requests/{action}",
            post(spaces::answer_follow_request),
        )
        .route("/invitations/{token}", get(spaces::invitation))
        .route(
            "/invitations/{token}/accept",
            post(spaces::accept_invitation),
        )
        .route(
            "/invitations/{token}/decline",
            post(spaces::decline_invitation),
        )
        .route("/spaces/{space}/rooms/new", get(rooms::new_page))
        .route("/spaces/{space}/rooms", post(rooms::create))
        .route("/spaces/{space}/rooms/{room}", get(rooms::show))
        .route("/spaces/{space}/rooms/{room}/unlock", post(rooms::unlock))
        .route("/spaces/{space}/rooms/{room}/token", post(gathering::token))
        .route(
            "/spaces/{space}/rooms/{room}/signal",
            get(gathering::signal),
        )
        .route(
            "/spaces/{space}/rooms/{room}/edit",
            get(rooms::edit_page).post(rooms::edit),
        )
        .route(
            "/spaces/{space}/rooms/{room}/delete",
            get(rooms::delete_page).post(rooms::delete),
        )
        .route(convene_web::routes::NETWORK, get(network::page))
        .route(convene_web::routes::NETWORK_FOLLOW, post(network::follow))
        .route("/network/unfollow", post(network::unfollow))
        .route(
            "/authorize_interaction",
            get(network::authorize_interaction),
        )
        .route(convene_web::routes::ADMIN_QUEUE, get(queue::page))
        .route("/admin/queue/jobs/{id}/retry", post(queue::retry))
        .route(
            convene_web::routes::ADMIN_GATHERINGS,
            get(queue::gatherings),
        )
        .route(
            convene_web::routes::VISIT,
            get(visits::page).post(visits::visit),
        )
        .route(convene_web::routes::VISIT_JOIN, post(visits::join))
        .route("/visit/invitations/{verb}", post(visits::answer_invitation))
        .route(
            "/spaces/{space}/invitations/remote",
            post(visits::invite_remote),
        )
        .route(
            "/spaces/{space}/join-requests/{id}/{verb}",
            post(visits::decide),
        )
        .route(crate::core::admission::ENTER_PATH, get(visits::enter))
        .route(
            "/spaces/{space}/rooms/{room}/elsewhere",
            post(visits::elsewhere),
        )
        .route(
            convene_web::routes::ADMIN_FEDERATION,
            get(federation_admin::page),
        )
        .route("/admin/federation/policy", post(federation_admin::set_mode))
        .route("/admin/federation/partners", post(federation_admin::add))
        .route("/admin/federation/check", post(federation_admin::check))
        .route("/admin/federation/remove", post(federation_admin::remove))
        .route(
            "/admin/federation/passports",
            post(federation_admin::block_passport),
        )
        .route(
            "/admin/federation/passports/unblock",
            post(federation_admin::unblock_passport),
        )
        .merge(governance::routes())
        .fallback(|| async { AppError::NotFound })
}

/// The page context for a visitor: instance, navigation, CSRF token, flash.
pub fn context(state: &AppState, visitor: &Visitor) -> PageContext {
    let mut ctx = PageContext::bare(
        state.settings.instance_name.clone(),
        state.settings.domain(),
    );
    ctx.csrf = visitor.csrf(&state.csrf_key);
    ctx.source_url = state.settings.source_url.clone();
    if let Some(p) = visitor.passport() {
        ctx.user = Some(NavUser {
            handle: p.handle.to_string(),
            display_name: p.display_name.to_string(),
            is_operator: p.is_operator,
        });
        ctx.can_create_spaces =
            crate::domain::spaces::may_create(p, state.settings.open_space_creation);
    }
    ctx.flash = visitor
        .flash
        .as_ref()
        .map(|(kind, message)| match kind.as_str() {
            "success" => view::Flash::success(message.clone()),
            "error" => view::Flash::error(message.clone()),
            _ => view::Flash::info(message.clone()),
        });
    ctx
}

/// Renders an error as a full page, with the visitor's navigation when a session is known.
pub async fn error_page(
    state: &AppState,
    session_cookie: Option<&str>,
    bid: &str,
    info: &ErrorInfo,
) -> Response {
    let session = match session_cookie {
        Some(token) => crate::domain::auth::session(&state.db, token)
            .await
            .ok()
            .flatten(),
        None => None,
    };
    let v = Visitor {
        session,
        bid: bid.to_string(),
        flash: None,
    };
    let ctx = context(state, &v);
    let mut response = (
        info.status,
        convene_web::pages::error(&ctx, info.status.as_u16(), &info.title, &info.detail),
    )
        .into_response();
    if let Some(seconds) = info.retry_after
        && let Ok(value) = seconds.to_string().parse()
    {
        response.headers_mut().insert("retry-after", value);
    }
    response
}

/// The session a guest acts in: the visitor's own, or one started now whose cookie
/// [`GuestSession::set_cookie`] adds to the response.
pub(super) struct GuestSession {
    pub hash: String,
    new_token: Option<String>,
}

impl GuestSession {
    pub async fn for_visitor(state: &AppState, visitor: &Visitor) -> Result<Self> {
        if let Some(hash) = visitor.session_hash() {
            return Ok(Self {
                hash: hash.to_string(),
                new_token: None,
            });
        }
        let token = crate::domain::auth::start_session(&state.db, None).await?;
        Ok(Self {
            hash: crate::domain::sha256_hex(&token),
            new_token: Some(token),
        })
    }

    /// Sets the cookie of a session started for this request.
    pub fn set_cookie(&self, state: &AppState, response: &mut Response) {
        if let Some(token) = &self.new_token {
            visitor::append_cookie(
                response.headers_mut(),
                visitor::set_cookie(
                    visitor::SESSION_COOKIE,
                    token,
                    Some(crate::domain::auth::GUEST_SESSION_TTL),
                    state.settings.secure_cookies(),
                ),
            );
        }
    }
}

/// Splits validation problems (shown inline on the form) from other errors.
fn form_errors(err: AppError) -> Result<FormErrors> {
    match err {
        AppError::Invalid(errors) => Ok(FormErrors(
            errors
                .into_iter()
                .map(|e| view::FieldError {
                    field: e.field.to_string(),
                    message: e.message,
                })
                .collect(),
        )),
        AppError::Conflict { field, message } => Ok(FormErrors::new().with(field, message)),
        other => Err(other),
    }
}

/// A page re-rendered with problems: 422 so that scripts and tests can tell.
fn invalid(markup: maud::Markup) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, markup).into_response()
}

/// A redirect that shows `message` on the next page.
fn redirect_with(state: &AppState, to: &str, kind: &str, message: &str) -> Response {
    let mut response = super::redirect(to);
    visitor::append_cookie(
        response.headers_mut(),
        visitor::flash_cookie(kind, message, state.settings.secure_cookies()),
    );
    response
}

fn web_role(role: Role) -> view::Role {
    match role {
        Role::Owner => view::Role::Owner,
        Role::Member => view::Role::Member,
    }
}

/// "12 March 2026" for a unix time.
fn date(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%-d %B %Y").to_string())
        .unwrap_or_default()
}
