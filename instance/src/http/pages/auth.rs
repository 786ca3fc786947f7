//! Sign up, sign in by emailed code, and sign out.

use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use convene_web::view::{FormErrors, SigninForm, SignupForm, VerifyForm};
use serde::Deserialize;

use super::{context, form_errors, invalid, redirect_with};
use crate::app::AppState;
use crate::core;
use crate::domain::auth;
use crate::domain::values::{DisplayName, Email, Handle};
use crate::error::{AppError, FieldError, Result};
use crate::http::client::ClientAddr;
use crate::http::redirect;
use crate::http::visitor::{self, SESSION_COOKIE, Visitor};

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

/// Only paths on this instance are followed after sign-in, never another site.
///
/// The check is made on the URL as a browser would read it: browsers drop tabs and line
/// breaks and read `\` as `/`, so `/\t/evil.example` or `/\\evil.example` lead off-site. The
/// path is resolved against a placeholder origin with a WHATWG parser, kept only if it stays
/// on that origin, and the resolved path (not the input) is what the redirect carries.
pub(crate) fn safe_next(next: Option<&str>) -> Option<String> {
    let next = next?;
    if !next.starts_with('/') {
        return None;
    }
    let base = url::Url::parse("https://convene.invalid/").ok()?;
    let resolved = base.join(next).ok()?;
    if resolved.origin() != base.origin() {
        return None;
    }
    let mut local = resolved.path().to_string();
    if let Some(query) = resolved.query() {
        local.push('?');
        local.push_str(query);
    }
    // The resolved form never starts with `//`, but a path made only of dots and slashes
    // could; refuse rather than trust it.
    (!local.starts_with("//")).then_some(local)
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
    client: ClientAddr,
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
        core::accounts::request_sign_up(&state.core, &email, &handle, &name, &client.key()).await?;
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
    client: ClientAddr,
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
    core::accounts::request_sign_in(&state.core, &email, &client.key()).await?;
    Ok(redirect(&verify_url(email.as_str(), Some(&input.next))))
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

#[cfg(test)]
mod tests {
    use super::safe_next;

    /// Guards issue 10 (item 2): paths that browsers read as another host are refused.
    #[test]
    fn only_local_paths_survive_a_browsers_reading() {
        for evil in [
            "/\t/evil.example/phish",
            "//evil.example",
            "/\\evil.example",
            "\\/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            " /evil",
            "/\t\\evil.example",
        ] {
            assert_eq!(safe_next(Some(evil)), None, "{evil:?}");
        }
        assert_eq!(
            safe_next(Some("/spaces/town?tab=rooms")).as_deref(),
            Some("/spaces/town?tab=rooms")
        );
        assert_eq!(safe_next(Some("/a/../b")).as_deref(), Some("/b"));
        assert_eq!(safe_next(Some("/")).as_deref(), Some("/"));
    }
}
