//! The account page (display name) and personal access tokens for the API.

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use convene_web::view::{AccountForm, FormErrors, NewToken, TokenForm, TokenRow, TokensView};
use serde::Deserialize;

use super::{context, date, form_errors, invalid, redirect_with};
use crate::app::AppState;
use crate::domain::auth;
use crate::domain::passports::Passport;
use crate::domain::values::DisplayName;
use crate::error::Result;
use crate::http::visitor::Visitor;

fn account_form(p: &Passport) -> AccountForm {
    AccountForm {
        handle: p.handle.to_string(),
        email: p
            .email
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        display_name: p.display_name.to_string(),
        errors: FormErrors::new(),
    }
}

/// `GET /me`
pub async fn page(State(state): State<AppState>, visitor: Visitor) -> Result<Response> {
    let p = visitor.require()?;
    Ok(convene_web::pages::account(&context(&state, &visitor), &account_form(p)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct AccountInput {
    display_name: String,
}

/// `POST /me`
pub async fn update(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(input): Form<AccountInput>,
) -> Result<Response> {
    let p = visitor.require()?;
    match DisplayName::parse(&input.display_name) {
        Ok(name) => {
            crate::core::accounts::rename(&state.core, p.id, &name).await?;
            Ok(redirect_with(
                &state,
                convene_web::routes::ACCOUNT,
                "success",
                "Your name is saved.",
            ))
        }
        Err(e) => Ok(invalid(convene_web::pages::account(
            &context(&state, &visitor),
            &AccountForm {
                display_name: input.display_name,
                errors: FormErrors::new().with("display_name", e.0),
                ..account_form(p)
            },
        ))),
    }
}

async fn tokens_view(state: &AppState, p: &Passport) -> Result<TokensView> {
    Ok(TokensView {
        tokens: auth::api_tokens(&state.db, p)
            .await?
            .into_iter()
            .map(|t| TokenRow {
                id: t.id.to_string(),
                name: t.name,
                created: date(t.created_at),
                last_used: t.last_used_at.map(date),
            })
            .collect(),
        new_token: None,
        form: TokenForm::default(),
    })
}

/// `GET /me/tokens`
pub async fn tokens(State(state): State<AppState>, visitor: Visitor) -> Result<Response> {
    let p = visitor.require()?;
    let view = tokens_view(&state, p).await?;
    Ok(convene_web::pages::tokens(&context(&state, &visitor), &view).into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct TokenInput {
    name: String,
}

/// `POST /me/tokens`: creates a token and shows its secret once.
pub async fn create_token(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(input): Form<TokenInput>,
) -> Result<Response> {
    let p = visitor.require()?;
    match auth::create_api_token(&state.db, p, &input.name).await {
        Ok((token, secret)) => {
            let mut view = tokens_view(&state, p).await?;
            view.new_token = Some(NewToken {
                name: token.name,
                secret,
            });
            Ok(convene_web::pages::tokens(&context(&state, &visitor), &view).into_response())
        }
        Err(err) => {
            let errors = form_errors(err)?;
            let mut view = tokens_view(&state, p).await?;
            view.form = TokenForm {
                name: input.name,
                errors,
            };
            Ok(invalid(convene_web::pages::tokens(
                &context(&state, &visitor),
                &view,
            )))
        }
    }
}

/// `POST /me/tokens/{id}/revoke`
pub async fn revoke_token(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<i64>,
) -> Result<Response> {
    let p = visitor.require()?;
    auth::revoke_api_token(&state.db, p, id).await?;
    Ok(redirect_with(
        &state,
        convene_web::routes::TOKENS,
        "success",
        "The token is revoked.",
    ))
}
