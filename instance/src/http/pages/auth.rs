//! Sign up, sign in by emailed code, and sign out.

use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use convene_web::view::{FormErrors, SigninForm, SignupForm, VerifyForm};
use serde::Deserialize;

use super::{context, form_errors, invalid, redirect_with};
use crate::app::AppState;
use crate::domain::auth::{self, CodePurpose};
use crate::domain::passports;
use crate::domain::values::{DisplayName, Email, Handle};
use crate::error::{AppError, FieldError, Result};
use crate::http::redirect;
use crate::http::visitor::{self, SESSION_COOKIE, Visitor};
use crate::mail;

const NEXT_COOKIE: &str = "convene_next";

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SignupInput {
    email: String,
    handle: String,
    display_name: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NextQuery {
    next: Option<String>,
    email: Option<String>,
    code: Option<String>,
}

/// Only local paths are followed after sign-in, never another site.
fn safe_next(next: Option<&str>) -> Option<String> {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .map(str::to_string)
}

/// Remembers where to go after signing in, across the code round trip.
fn remember_next(state: &AppState, mut response: Response, next: Option<&str>) -> Response {
    if let Some(next) = safe_next(next) {
        let encoded: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
        visitor::append_cookie(
            response.headers_mut(),
            visitor::set_cookie(
                NEXT_COOKIE,
                &encoded,
                Some(3600),
                state.settings.secure_cookies(),
            ),
        );
    }
    response
}

/// `GET /signup`
pub async fn signup_page(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(q): Query<NextQuery>,
) -> Response {
    let page = convene_web::pages::signup(
        &context(&state, &visitor),
        &SignupForm {
            email: q.email.clone().unwrap_or_default(),
            ..SignupForm::default()
        },
    );
    remember_next(&state, page.into_response(), q.next.as_deref())
}

/// `POST /signup`: checks the handle and address, then emails a code.
pub async fn signup(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(input): Form<SignupInput>,
) -> Result<Response> {
    let result = async {
        let mut errors = Vec::new();
        let email = Email::parse(&input.email)
            .map_err(|e| {
                errors.push(FieldError {
                    field: "email",
                    message: e.0.into(),
                })
            })
            .ok();
        let handle = Handle::parse(&input.handle)
            .map_err(|e| {
                errors.push(FieldError {
                    field: "handle",
                    message: e.0.into(),
                })
            })
            .ok();
        let name = DisplayName::parse(&input.display_name)
            .map_err(|e| {
                errors.push(FieldError {
                    field: "display_name",
                    message: e.0.into(),
                })
            })
            .ok();
        let (Some(email), Some(handle), Some(name)) = (email, handle, name) else {
            return Err(AppError::Invalid(errors));
        };
        passports::check_available(&state.db, &handle, &email).await?;
        let code = auth::issue_code(
            &state.db,
            &email,
            &CodePurpose::SignUp {
                handle: handle.clone(),
                display_name: name,
            },
        )
        .await?;
        send_code(
            &state,
            &email,
            &code,
            &format!(
                "Welcome! Your new Passport will be @{handle}@{}.",
                state.settings.domain()
            ),
        )
        .await?;
        Ok(email)
    }
    .await;
    match result {
        Ok(email) => Ok(redirect(&convene_web::routes::verify(email.as_str()))),
        Err(err) => {
            let errors = form_errors(err)?;
            Ok(invalid(convene_web::pages::signup(
                &context(&state, &visitor),
                &SignupForm {
                    email: input.email,
                    handle: input.handle,
                    display_name: input.display_name,
                    errors,
                },
            )))
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SigninInput {
    email: String,
}

/// `GET /signin`
pub async fn signin_page(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(q): Query<NextQuery>,
) -> Response {
    let page = convene_web::pages::signin(
        &context(&state, &visitor),
        &SigninForm {
            email: q.email.clone().unwrap_or_default(),
            errors: FormErrors::new(),
        },
    );
    remember_next(&state, page.into_response(), q.next.as_deref())
}

/// `POST /signin`: emails a code if a Passport uses the address. The answer is the same either
/// way, so the form does not reveal who has a Passport here.
pub async fn signin(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(input): Form<SigninInput>,
) -> Result<Response> {
    let email = match Email::parse(&input.email) {
        Ok(email) => email,
        Err(e) => {
            return Ok(invalid(convene_web::pages::signin(
                &context(&state, &visitor),
                &SigninForm {
                    email: input.email,
                    errors: FormErrors::new().with("email", e.0),
                },
            )));
        }
    };
    match passports::by_email(&state.db, &email).await? {
        Some(_) => {
            let code = auth::issue_code(&state.db, &email, &CodePurpose::SignIn).await?;
            send_code(&state, &email, &code, "Here is your code to sign in.").await?;
        }
        None => {
            let link = state.settings.url(&format!(
                "/signup?email={}",
                convene_web::routes::query_value(email.as_str())
            ));
            state.mailer.enqueue(mail::Email {
                to: email.as_str(),
                subject: &format!("Signing in to {}", state.settings.instance_name),
                body: &format!(
                    "Hello,\n\nSomeone asked to sign in to {} with this address, but no Passport uses it.\n\
                     To create one, go to:\n{link}\n\nIf it was not you, ignore this email.\n",
                    state.settings.instance_name
                ),
                kind: "signin-unknown",
            }).await?;
        }
    }
    Ok(redirect(&convene_web::routes::verify(email.as_str())))
}

async fn send_code(state: &AppState, email: &Email, code: &str, intro: &str) -> Result<()> {
    let link = state.settings.url(&format!(
        "/verify?email={}&code={code}",
        convene_web::routes::query_value(email.as_str())
    ));
    state
        .mailer
        .enqueue(mail::Email {
            to: email.as_str(),
            subject: &format!("{code} is your {} code", state.settings.instance_name),
            body: &format!(
                "Hello,\n\n{intro}\n\nYour code: {code}\n\nOr open this link:\n{link}\n\n\
                 The code works once, for 15 minutes. If you did not ask for it, ignore this email.\n"
            ),
            kind: "code",
        })
        .await
}

/// `GET /verify?email=E`
pub async fn verify_page(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(q): Query<NextQuery>,
) -> Response {
    let email = q.email.unwrap_or_default();
    convene_web::pages::verify(
        &context(&state, &visitor),
        &VerifyForm {
            resend_url: convene_web::routes::signin_with_email(&email),
            email,
            code: q.code.unwrap_or_default(),
            errors: FormErrors::new(),
        },
    )
    .into_response()
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct VerifyInput {
    email: String,
    code: String,
}

/// `POST /verify`: spends the code, starts a session and goes where the visitor was heading.
pub async fn verify(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: axum::http::HeaderMap,
    Form(input): Form<VerifyInput>,
) -> Result<Response> {
    let result = async {
        let email = Email::parse(&input.email).map_err(|e| AppError::invalid("code", e.0))?;
        auth::redeem_code(&state.db, &email, &input.code).await
    }
    .await;
    let passport = match result {
        Ok(p) => p,
        Err(err) => {
            let errors = form_errors(err)?;
            // A clash at the last moment (someone took the handle) belongs on the code field.
            let errors = if errors.get("code").is_none() {
                let mut e = FormErrors::new();
                for fe in errors.iter() {
                    e.push("code", fe.message.clone());
                }
                e
            } else {
                errors
            };
            return Ok(invalid(convene_web::pages::verify(
                &context(&state, &visitor),
                &VerifyForm {
                    resend_url: convene_web::routes::signin_with_email(&input.email),
                    email: input.email,
                    code: String::new(),
                    errors,
                },
            )));
        }
    };
    if let Some(old) = visitor.session_hash() {
        auth::end_session(&state.db, old).await?;
    }
    let token = auth::start_session(&state.db, Some(&passport)).await?;
    let next = visitor::cookie(&headers, NEXT_COOKIE).and_then(|n| {
        url::form_urlencoded::parse(format!("n={n}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    });
    let to = safe_next(next.as_deref()).unwrap_or_else(|| "/".to_string());
    let secure = state.settings.secure_cookies();
    let mut response = redirect_with(
        &state,
        &to,
        "success",
        &format!("Welcome, {}.", passport.display_name),
    );
    visitor::append_cookie(
        response.headers_mut(),
        visitor::set_cookie(SESSION_COOKIE, &token, Some(auth::SESSION_TTL), secure),
    );
    visitor::append_cookie(
        response.headers_mut(),
        visitor::set_cookie(NEXT_COOKIE, "", Some(0), secure),
    );
    Ok(response)
}

/// `POST /signout`
pub async fn signout(State(state): State<AppState>, visitor: Visitor) -> Result<Response> {
    if let Some(hash) = visitor.session_hash() {
        auth::end_session(&state.db, hash).await?;
    }
    let mut response = redirect_with(&state, "/", "info", "You are signed out.");
    visitor::append_cookie(
        response.headers_mut(),
        visitor::set_cookie(SESSION_COOKIE, "", Some(0), state.settings.secure_cookies()),
    );
    Ok(response)
}
