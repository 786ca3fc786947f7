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

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SignupInput {
    email: String,
    handle: String,
    display_name: String,
    next: String,
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

/// `/verify?email=E[&next=N]`
fn verify_url(email: &str, next: Option<&str>) -> String {
    let mut url = convene_web::routes::verify(email);
    if let Some(next) = safe_next(next) {
        url.push_str("&next=");
        url.push_str(&convene_web::routes::query_value(&next));
    }
    url
}

/// `GET /signup`
pub async fn signup_page(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(q): Query<NextQuery>,
) -> Response {
    let form = SignupForm {
        email: q.email.unwrap_or_default(),
        next: safe_next(q.next.as_deref()).unwrap_or_default(),
        ..SignupForm::default()
    };
    convene_web::pages::signup(&context(&state, &visitor), &form).into_response()
}

fn field<'a>(
    errors: &'a mut Vec<FieldError>,
    field: &'static str,
) -> impl FnMut(crate::domain::values::Invalid) + 'a {
    move |e| {
        errors.push(FieldError {
            field,
            message: e.0.into(),
        })
    }
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
            .map_err(field(&mut errors, "email"))
            .ok();
        let handle = Handle::parse(&input.handle)
            .map_err(field(&mut errors, "handle"))
            .ok();
        let name = DisplayName::parse(&input.display_name)
            .map_err(field(&mut errors, "display_name"))
            .ok();
        let (Some(email), Some(handle), Some(name)) = (email, handle, name) else {
            return Err(AppError::Invalid(errors));
        };
        passports::check_available(&state.db, &handle, &email).await?;
        let purpose = CodePurpose::SignUp {
            handle: handle.clone(),
            display_name: name,
        };
        let code = auth::issue_code(&state.db, &email, &purpose).await?;
        let intro = format!(
            "Welcome! Your new Passport will be @{handle}@{}.",
            state.settings.domain()
        );
        send_code(&state, &email, &code, &intro).await?;
        Ok(email)
    }
    .await;
    match result {
        Ok(email) => Ok(redirect(&verify_url(email.as_str(), Some(&input.next)))),
        Err(err) => {
            let errors = form_errors(err)?;
            let form = SignupForm {
                next: safe_next(Some(&input.next)).unwrap_or_default(),
                email: input.email,
                handle: input.handle,
                display_name: input.display_name,
                errors,
            };
            Ok(invalid(convene_web::pages::signup(
                &context(&state, &visitor),
                &form,
            )))
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SigninInput {
    email: String,
    next: String,
}

/// `GET /signin`
pub async fn signin_page(
    State(state): State<AppState>,
    visitor: Visitor,
    Query(q): Query<NextQuery>,
) -> Response {
    let form = SigninForm {
        email: q.email.unwrap_or_default(),
        next: safe_next(q.next.as_deref()).unwrap_or_default(),
        errors: FormErrors::new(),
    };
    convene_web::pages::signin(&context(&state, &visitor), &form).into_response()
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
            let form = SigninForm {
                next: safe_next(Some(&input.next)).unwrap_or_default(),
                email: input.email,
                errors: FormErrors::new().with("email", e.0),
            };
            return Ok(invalid(convene_web::pages::signin(
                &context(&state, &visitor),
                &form,
            )));
        }
    };
    match passports::by_email(&state.db, &email).await? {
        Some(_) => {
            let code = auth::issue_code(&state.db, &email, &CodePurpose::SignIn).await?;
            send_code(&state, &email, &code, "Here is your code to sign in.").await?;
        }
        None => {
            let link = state
                .settings
                .url(&convene_web::routes::signup_with_email(email.as_str()));
            let body = format!(
                "Hello,\n\nSomeone asked to sign in to {} with this address, but no Passport uses it.\n\
                 To create one, go to:\n{link}\n\nIf it was not you, ignore this email.\n",
                state.settings.instance_name
            );
            state
                .mailer
                .enqueue(mail::Email {
                    to: email.as_str(),
                    subject: &format!("Signing in to {}", state.settings.instance_name),
                    body: &body,
                    kind: "signin-unknown",
                })
                .await?;
        }
    }
    Ok(redirect(&verify_url(email.as_str(), Some(&input.next))))
}

async fn send_code(state: &AppState, email: &Email, code: &str, intro: &str) -> Result<()> {
    let link = state
        .settings
        .url(&convene_web::routes::verify_with_code(email.as_str(), code));
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
    let form = VerifyForm {
        resend_url: convene_web::routes::signin_with_email(&email),
        email,
        code: q.code.unwrap_or_default(),
        next: safe_next(q.next.as_deref()).unwrap_or_default(),
        errors: FormErrors::new(),
    };
    convene_web::pages::verify(&context(&state, &visitor), &form).into_response()
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct VerifyInput {
    email: String,
    code: String,
    next: String,
}

/// `POST /verify`: spends the code, starts a session and goes where the visitor was heading.
pub async fn verify(
    State(state): State<AppState>,
    visitor: Visitor,
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
            // Every problem here (even a handle taken at the last moment) is about the code.
            let mut errors = FormErrors::new();
            for e in form_errors(err)?.iter() {
                errors.push("code", e.message.clone());
            }
            let form = VerifyForm {
                resend_url: convene_web::routes::signin_with_email(&input.email),
                next: safe_next(Some(&input.next)).unwrap_or_default(),
                email: input.email,
                code: String::new(),
                errors,
            };
            return Ok(invalid(convene_web::pages::verify(
                &context(&state, &visitor),
                &form,
            )));
        }
    };
    if let Some(old) = visitor.session_hash() {
        auth::end_session(&state.db, old).await?;
    }
    let token = auth::start_session(&state.db, Some(&passport)).await?;
    let to = safe_next(Some(&input.next)).unwrap_or_else(|| "/".to_string());
    let welcome = format!("Welcome, {}.", passport.display_name);
    let mut response = redirect_with(&state, &to, "success", &welcome);
    visitor::append_cookie(
        response.headers_mut(),
        visitor::set_cookie(
            SESSION_COOKIE,
            &token,
            Some(auth::SESSION_TTL),
            state.settings.secure_cookies(),
        ),
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
