//! Fuzzing entry points for the instance's outside input: each page's form and query, and the
//! API's JSON bodies. The targets `fuzz/fuzz_targets/form.rs` and `api_json.rs` run them under
//! cargo-fuzz; `tests/fuzz_replay.rs` runs them (and the entry points of `convene-governance`
//! and `convene-media`) over the kept corpus on stable Rust.
//!
//! An entry point takes arbitrary bytes and returns nothing; by contract it never panics. The
//! first line of the input names what the rest is (`room` for the Room form, `space` for the
//! API's Space body, ...); see [`FORMS`] and [`API_BODIES`].
//!
//! # How close to the handlers
//! Bodies and queries go through axum's own `Form`, `Query` and `Json` extractors, polled to
//! completion here (their futures never wait on an in-memory body), into the handler's own
//! input type, so decoding is exactly the server's. The input types keep their fields private
//! to their handler modules, so each is decoded a second time into a mirror type with the same
//! fields and serde attributes; a test checks the field lists are the same, and every
//! execution checks both decodings accept the same inputs. The mirror's fields then go through
//! the validation the handler runs before it touches the database: the same public parsers
//! (`Email::parse`, `Slug::parse`, `AccessCode::parse`, `read_ballot`, ...) with the same
//! arguments, and the handler's small private glue (defaults, trimming) restated here. What
//! needs the database (is a handle taken, is the code right) is not reached.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use axum::Json;
use axum::body::Body;
use axum::extract::{Form, FromRequest, FromRequestParts, Query};
use axum::http::Request;
use axum::http::header::CONTENT_TYPE;
use convene_governance::Method;
use convene_governance::budget::Budget;
use convene_web::view::{FormErrors, PageContext, SigninForm, SignupForm, VerifyForm};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::domain::rooms::{self, Access, RoomFields};
use crate::domain::spaces::Role;
use crate::domain::values::{self, AccessCode, DisplayName, Email, Handle, Slug};
use crate::governance::elections::Candidate;
use crate::governance::{motions, parse_constituency, roll, voting};
use crate::http::api::{InviteBody, RoomBody, SpaceBody};
use crate::http::pages::{account, auth, gathering, governance, rooms as room_pages, spaces};
use crate::http::visitor;

/// The page inputs [`form`] knows, by the name on the input's first line.
pub const FORMS: &[&str] = &[
    "signup",
    "signin",
    "verify",
    "next-query",
    "account",
    "api-token",
    "guest-token",
    "unlock",
    "room",
    "delete-room",
    "space",
    "invite",
    "worker-role",
    "circle-size",
    "election",
    "nominate",
    "ballot",
    "motion",
    "motion-vote",
];

/// The API bodies [`api_json`] knows, by the name on the input's first line.
pub const API_BODIES: &[&str] = &["space", "room", "invite"];

/// A page's input: the first line names it (one of [`FORMS`]), the rest is the
/// `application/x-www-form-urlencoded` body (for `next-query`, the query string of
/// `GET /signin`, `/signup` and `/verify`).
pub fn form(data: &[u8]) {
    let (name, body) = split(data);
    // Every unsafe request first passes the CSRF check, which reads the body's `csrf` field.
    csrf(body);
    page_input(name, body);
}

/// Runs the input named `name`; false for a name that is not one of [`FORMS`].
fn page_input(name: &[u8], body: &[u8]) -> bool {
    match name {
        b"signup" => signup(body),
        b"signin" => {
            if let Some(input) = decode_form::<auth::SigninInput, Signin>(body) {
                let _ = Email::parse(&input.email);
                render_signin(input.email, input.next);
            }
        }
        b"verify" => verify(body),
        b"next-query" => next_query(body),
        b"account" => {
            if let Some(input) = decode_form::<account::AccountInput, Account>(body) {
                let _ = DisplayName::parse(&input.display_name);
            }
        }
        b"api-token" => {
            if let Some(input) = decode_form::<account::TokenInput, ApiToken>(body) {
                // `auth::create_api_token`, before it stores the token.
                let name = input.name.trim();
                let _ = !name.is_empty() && name.chars().count() <= 60;
            }
        }
        b"guest-token" => {
            if let Some(input) = decode_form::<gathering::TokenInput, GuestToken>(body) {
                let _ = DisplayName::parse(&input.guest_name);
            }
        }
        b"unlock" => {
            if let Some(input) = decode_form::<room_pages::UnlockInput, Unlock>(body) {
                // `core::rooms::unlock` compares the attempt with the Room's code.
                if let Ok(code) = AccessCode::parse("correct horse") {
                    let _ = code.matches(&input.code);
                }
            }
        }
        b"room" => {
            if let Some(input) = decode_form::<room_pages::RoomInput, RoomForm>(body) {
                let _ = room_form_fields(&input);
            }
        }
        b"delete-room" => {
            if let Some(input) = decode_form::<room_pages::DeleteInput, DeleteRoom>(body) {
                let _ = input.confirm.is_none();
            }
        }
        b"space" => space(body),
        b"invite" => {
            if let Some(input) = decode_form::<spaces::InviteInput, Invite>(body) {
                let _ = Email::parse(&input.email);
                let _ = Role::parse(if input.role.is_empty() {
                    "member"
                } else {
                    &input.role
                });
            }
        }
        b"worker-role" => {
            if let Some(input) = decode_form::<governance::circle::RoleInput, WorkerRole>(body) {
                let _ = roll::WorkerRole::parse_optional(&input.role);
                // `roll::set_worker_role`, before it looks the handle up.
                let _ = Handle::parse(input.handle.trim().trim_start_matches('@'));
                let _ = values::parse_text(&input.reason, 300);
            }
        }
        b"circle-size" => {
            if let Some(input) = decode_form::<governance::circle::SizeInput, CircleSize>(body) {
                let _ = input.seats.trim().parse::<i64>();
                let _ = parse_constituency(&input.constituency);
            }
        }
        b"election" => election(body),
        b"nominate" => {
            if let Some(input) = decode_form::<governance::elections::NominateInput, Nominate>(body)
            {
                // `elections::nominate`, before it looks the handle up.
                let _ = values::parse_text(&input.statement, 2000);
                let wanted = input.handle.trim().trim_start_matches('@');
                if !wanted.is_empty() {
                    let _ = Handle::parse(wanted);
                }
            }
        }
        b"ballot" => ballot(body),
        b"motion" => motion(body),
        b"motion-vote" => {
            if let Some(input) = decode_form::<governance::motions::VoteInput, MotionVote>(body) {
                let _ = motions::parse_position(&input.position);
            }
        }
        _ => return false,
    }
    true
}

/// An API request body: the first line names it (one of [`API_BODIES`]), the rest is the JSON.
pub fn api_json(data: &[u8]) {
    let (name, body) = split(data);
    api_body(name, body);
}

/// Runs the body named `name`; false for a name that is not one of [`API_BODIES`].
fn api_body(name: &[u8], body: &[u8]) -> bool {
    match name {
        b"space" => {
            if let Some(body) = decode_json::<SpaceBody, ApiSpace>(body) {
                api_space(&body);
            }
        }
        b"room" => {
            if let Some(body) = decode_json::<RoomBody, ApiRoom>(body) {
                api_room(&body);
            }
        }
        b"invite" => {
            if let Some(body) = decode_json::<InviteBody, ApiInvite>(body) {
                let _ = Email::parse(&body.email);
                let _ = Role::parse(body.role.as_deref().unwrap_or("member"));
            }
        }
        _ => return false,
    }
    true
}

/// The name on the first line and the bytes after it.
fn split(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}

/// `http::check_csrf`: the body's `csrf` field against the browser's token.
fn csrf(body: &[u8]) {
    let submitted = url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let _ = visitor::csrf_valid(&[7; 32], "browser", &submitted);
}

/// Polls an extractor's future to its end: with the whole body in memory it never waits.
fn ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    // A few polls in case a layer yields once; an extractor that keeps waiting on an in-memory
    // body is not one the server could finish either.
    for _ in 0..8 {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return Some(out);
        }
    }
    None
}

/// Decodes `body` as axum's `Form` does for the handler's type `R` and for its mirror `M`,
/// checks they agree, and gives the mirror.
fn decode_form<R, M>(body: &[u8]) -> Option<M>
where
    R: DeserializeOwned + Send,
    M: DeserializeOwned + Send,
{
    let real = ready(Form::<R>::from_request(
        request("application/x-www-form-urlencoded", body)?,
        &(),
    ))?;
    let mirror = ready(Form::<M>::from_request(
        request("application/x-www-form-urlencoded", body)?,
        &(),
    ))?;
    agree(real.is_ok(), mirror.is_ok(), std::any::type_name::<R>());
    mirror.ok().map(|Form(m)| m)
}

/// Decodes `body` as axum's `Json` does for the handler's type `R` and for its mirror `M`,
/// checks they agree, and gives the mirror.
fn decode_json<R, M>(body: &[u8]) -> Option<M>
where
    R: DeserializeOwned + Send,
    M: DeserializeOwned + Send,
{
    let real = ready(Json::<R>::from_request(
        request("application/json", body)?,
        &(),
    ))?;
    let mirror = ready(Json::<M>::from_request(
        request("application/json", body)?,
        &(),
    ))?;
    agree(real.is_ok(), mirror.is_ok(), std::any::type_name::<R>());
    mirror.ok().map(|Json(m)| m)
}

/// Decodes a query string as axum's `Query` does, for the handler's type and its mirror.
fn decode_query<R, M>(query: &[u8]) -> Option<M>
where
    R: DeserializeOwned + Send,
    M: DeserializeOwned + Send,
{
    // Bytes that cannot be in a request line never reach the handler: hyper refuses them.
    let query = std::str::from_utf8(query).ok()?;
    let uri = format!("/signin?{query}");
    let parts = |uri: &str| {
        Request::builder()
            .uri(uri)
            .body(())
            .ok()
            .map(|r| r.into_parts().0)
    };
    let real = ready(Query::<R>::from_request_parts(&mut parts(&uri)?, &()))?;
    let mirror = ready(Query::<M>::from_request_parts(&mut parts(&uri)?, &()))?;
    agree(real.is_ok(), mirror.is_ok(), std::any::type_name::<R>());
    mirror.ok().map(|Query(m)| m)
}

fn request(content_type: &str, body: &[u8]) -> Option<Request<Body>> {
    Request::builder()
        .method("POST")
        .uri("/")
        .header(CONTENT_TYPE, content_type)
        .body(Body::from(body.to_vec()))
        .ok()
}

fn agree(real: bool, mirror: bool, what: &str) {
    assert_eq!(
        real, mirror,
        "the fuzzing mirror of {what} must accept exactly what the handler's type accepts"
    );
}

fn context() -> PageContext {
    PageContext::bare("Convene", "convene.example")
}

fn signup(body: &[u8]) {
    let Some(input) = decode_form::<auth::SignupInput, Signup>(body) else {
        return;
    };
    let _ = Email::parse(&input.email);
    let _ = Handle::parse(&input.handle);
    let _ = DisplayName::parse(&input.display_name);
    // A refused sign-up shows the form again with what was typed; `next` is shown unfiltered
    // here, a superset of what the handler's `safe_next` lets through.
    let form = SignupForm {
        next: input.next,
        email: input.email,
        handle: input.handle,
        display_name: input.display_name,
        errors: FormErrors::new(),
    };
    let _ = convene_web::pages::signup(&context(), &form);
}

fn render_signin(email: String, next: String) {
    let form = SigninForm {
        email,
        next,
        errors: FormErrors::new(),
    };
    let _ = convene_web::pages::signin(&context(), &form);
}

fn verify(body: &[u8]) {
    let Some(input) = decode_form::<auth::VerifyInput, Verify>(body) else {
        return;
    };
    let _ = Email::parse(&input.email);
    // `auth::redeem_code`, before it reads the stored code.
    let code = input.code.trim().replace([' ', '-'], "");
    let _ = code.len() == 6 && code.chars().all(|c| c.is_ascii_digit());
    render_verify(input.email, input.code, input.next);
}

fn render_verify(email: String, code: String, next: String) {
    let _ = convene_web::routes::verify(&email);
    let form = VerifyForm {
        resend_url: convene_web::routes::signin_with_email(&email),
        email,
        code,
        next,
        errors: FormErrors::new(),
    };
    let _ = convene_web::pages::verify(&context(), &form);
}

/// `GET /signup`, `/signin` and `/verify` render their query into the form.
fn next_query(query: &[u8]) {
    let Some(q) = decode_query::<auth::NextQuery, Next>(query) else {
        return;
    };
    let next = q.next.unwrap_or_default();
    let email = q.email.unwrap_or_default();
    let _ = convene_web::routes::query_value(&next);
    let form = SignupForm {
        email: email.clone(),
        next: next.clone(),
        ..SignupForm::default()
    };
    let _ = convene_web::pages::signup(&context(), &form);
    render_signin(email.clone(), next.clone());
    render_verify(email, q.code.unwrap_or_default(), next);
}

/// `pages::rooms::room_fields` for a new Room.
fn room_form_fields(input: &RoomForm) -> Option<(Slug, RoomFields)> {
    let name = DisplayName::parse(&input.name).ok();
    let slug_input = if input.slug.trim().is_empty() {
        Slug::suggest(&input.name)
    } else {
        input.slug.clone()
    };
    let slug = Slug::parse(&slug_input).ok();
    let topic = values::parse_text(&input.topic, 300).ok();
    let access = Access::parse(if input.access.is_empty() {
        "open"
    } else {
        &input.access
    })
    .ok();
    let access_code = if input.access_code.trim().is_empty() {
        Some(None)
    } else {
        AccessCode::parse(&input.access_code).map(Some).ok()
    };
    let capacity = input
        .capacity
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|c| (1..=rooms::MAX_CAPACITY).contains(c));
    let fields = RoomFields {
        name: name?,
        topic: topic?,
        access: access?,
        access_code: access_code?,
        listed: matches!(input.listed.as_deref(), Some("true" | "on")),
        capacity: capacity?,
    };
    fields.check().ok()?;
    Some((slug?, fields))
}

/// `pages::spaces::create` and `edit`: the slug and `space_fields`.
fn space(body: &[u8]) {
    let Some(input) = decode_form::<spaces::SpaceInput, SpaceForm>(body) else {
        return;
    };
    let slug_input = if input.slug.trim().is_empty() {
        Slug::suggest(&input.name)
    } else {
        input.slug.clone()
    };
    let _ = Slug::parse(&slug_input);
    let _ = DisplayName::parse(&input.name);
    let _ = values::parse_text(&input.description, 2000);
    let _ = input.listed.is_some() && input.entrance_room.is_empty();
}

/// `pages::governance::create_election` and the checks of `elections::create` that need no
/// database.
fn election(body: &[u8]) {
    let Some(input) = decode_form::<governance::elections::ElectionInput, ElectionForm>(body)
    else {
        return;
    };
    // `parse_local`: the datetime-local formats a browser sends.
    let time = |value: &str| {
        let s = value.trim();
        ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
            .iter()
            .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
            .map(|d| d.and_utc().timestamp())
    };
    let times = [
        time(&input.nominations_open),
        time(&input.nominations_close),
        time(&input.voting_open),
        time(&input.voting_close),
    ];
    let seats: i64 = input.seats.trim().parse().unwrap_or(0);
    let quorum: i64 = if input.quorum.trim().is_empty() {
        0
    } else {
        input.quorum.trim().parse().unwrap_or(-1)
    };
    let title = values::parse_text(&input.title, 120).unwrap_or_default();
    let _ = title.is_empty() || title.contains('\n');
    let _ = parse_constituency(&input.constituency);
    let method: Option<Method> = input.method.parse().ok();
    let _ = (method == Some(Method::Irv) && seats != 1) || !(0..=100).contains(&quorum);
    if let [Some(a), Some(b), Some(c), Some(d)] = times {
        let _ = a >= b || b > c || c >= d;
    }
    let _ = input.by_election.is_some();
}

/// `pages::governance::cast`: the raw body without its `csrf` field, read as a ballot by every
/// counting method against four standing candidates and a withdrawn one.
fn ballot(body: &[u8]) {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .filter(|(k, _)| k != "csrf")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let candidates: Vec<Candidate> = (1..=5)
        .map(|n| Candidate {
            nomination_id: n,
            passport_id: n,
            handle: format!("candidate{n}"),
            display_name: format!("Candidate {n}"),
            statement: String::new(),
            nominated_by: None,
            nominated_by_id: None,
            accepted: true,
            withdrawn: n == 5,
            ballot_number: (n < 5).then_some(n),
        })
        .collect();
    for method in [
        Method::ScottishStv,
        Method::Meek,
        Method::Irv,
        Method::Schulze,
        Method::Approval,
        Method::Plurality,
    ] {
        if let Ok(chosen) = voting::read_ballot(method, &candidates, &form) {
            let numbers: Vec<i64> = candidates.iter().filter_map(|c| c.ballot_number).collect();
            assert!(
                chosen.iter().all(|n| numbers.contains(n)),
                "an accepted ballot names only standing candidates"
            );
        }
    }
}

/// `pages::governance::propose` and the checks of `motions::propose_*` that need no database.
fn motion(body: &[u8]) {
    let Some(input) = decode_form::<governance::motions::MotionInput, MotionForm>(body) else {
        return;
    };
    let pct = |v: &str| {
        v.trim()
            .parse::<i64>()
            .ok()
            .and_then(|v| u8::try_from(v).ok())
            .filter(|v| *v <= 100)
    };
    match input.kind.as_str() {
        "budget" => {
            if let (Some(i), Some(o), Some(p)) = (
                pct(&input.infrastructure),
                pct(&input.operations),
                pct(&input.patronage),
            ) && let Ok(budget) = Budget::new(i, o, p)
            {
                let _ = budget.reserve();
            }
        }
        "objectives" => {
            if let Ok(text) = values::parse_text(&input.objectives, 4000) {
                // `split_objectives`
                let _ = text
                    .lines()
                    .map(|l| l.trim().trim_start_matches(['-', '*']).trim())
                    .filter(|l| !l.is_empty())
                    .count();
            }
        }
        _ => {}
    }
}

/// `api::create_space`, then the checks of `api::update_space` that need no database.
fn api_space(body: &ApiSpace) {
    let _ = DisplayName::parse(body.name.as_deref().unwrap_or(""));
    let slug_input = body
        .slug
        .clone()
        .unwrap_or_else(|| Slug::suggest(body.name.as_deref().unwrap_or("")));
    let _ = Slug::parse(&slug_input);
    let _ = values::parse_text(body.description.as_deref().unwrap_or(""), 2000);
    if let Some(d) = &body.description {
        let _ = values::parse_text(d, 2000);
    }
    let _ = body.listed.unwrap_or(true) && body.entrance_room.as_deref().is_some_and(str::is_empty);
}

/// `api::create_room`: the slug and `api::room_fields` for a new Room.
fn api_room(body: &ApiRoom) {
    let _ = Slug::parse(
        &body
            .slug
            .clone()
            .unwrap_or_else(|| Slug::suggest(body.name.as_deref().unwrap_or(""))),
    );
    let name = DisplayName::parse(body.name.as_deref().unwrap_or("")).ok();
    let topic = match &body.topic {
        Some(t) => values::parse_text(t, 300).ok(),
        None => Some(String::new()),
    };
    let access = match &body.access {
        Some(a) => Access::parse(a).ok(),
        None => Some(Access::Open),
    };
    let access_code = match &body.access_code {
        Some(c) => AccessCode::parse(c).map(Some).ok(),
        None => Some(None),
    };
    if let (Some(name), Some(topic), Some(access), Some(access_code)) =
        (name, topic, access, access_code)
    {
        let fields = RoomFields {
            name,
            topic,
            access,
            access_code,
            listed: body.listed.unwrap_or(true),
            capacity: body.capacity.unwrap_or(rooms::DEFAULT_CAPACITY),
        };
        let _ = fields.check();
    }
}

// Mirrors of the handlers' input types: same fields, same serde attributes.

/// Mirror of `pages::auth::SignupInput`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Signup {
    email: String,
    handle: String,
    display_name: String,
    next: String,
}

/// Mirror of `pages::auth::NextQuery`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Next {
    next: Option<String>,
    email: Option<String>,
    code: Option<String>,
}

/// Mirror of `pages::auth::SigninInput`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Signin {
    email: String,
    next: String,
}

/// Mirror of `pages::auth::VerifyInput`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Verify {
    email: String,
    code: String,
    next: String,
}

/// Mirror of `pages::account::AccountInput`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Account {
    display_name: String,
}

/// Mirror of `pages::account::TokenInput`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ApiToken {
    name: String,
}

/// Mirror of `pages::gathering::TokenInput`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct GuestToken {
    guest_name: String,
}

/// Mirror of `pages::rooms::UnlockInput`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Unlock {
    code: String,
}

/// Mirror of `pages::rooms::RoomInput`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RoomForm {
    name: String,
    slug: String,
    topic: String,
    access: String,
    access_code: String,
    listed: Option<String>,
    capacity: String,
}

/// Mirror of `pages::rooms::DeleteInput`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct DeleteRoom {
    confirm: Option<String>,
}

/// Mirror of `pages::spaces::SpaceInput`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct SpaceForm {
    name: String,
    slug: String,
    description: String,
    listed: Option<String>,
    entrance_room: String,
}

/// Mirror of `pages::spaces::InviteInput`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Invite {
    email: String,
    role: String,
}

/// Mirror of `pages::governance::circle::RoleInput`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct WorkerRole {
    handle: String,
    role: String,
    reason: String,
}

/// Mirror of `pages::governance::circle::SizeInput`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct CircleSize {
    seats: String,
    constituency: String,
}

/// Mirror of `pages::governance::elections::ElectionInput`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ElectionForm {
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

/// Mirror of `pages::governance::elections::NominateInput`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Nominate {
    handle: String,
    statement: String,
}

/// Mirror of `pages::governance::motions::MotionInput`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct MotionForm {
    kind: String,
    infrastructure: String,
    operations: String,
    patronage: String,
    objectives: String,
}

/// Mirror of `pages::governance::motions::VoteInput`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct MotionVote {
    position: String,
}

/// Mirror of `api::SpaceBody`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiSpace {
    slug: Option<String>,
    name: Option<String>,
    description: Option<String>,
    listed: Option<bool>,
    entrance_room: Option<String>,
}

/// Mirror of `api::RoomBody`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiRoom {
    slug: Option<String>,
    name: Option<String>,
    topic: Option<String>,
    access: Option<String>,
    access_code: Option<String>,
    listed: Option<bool>,
    capacity: Option<i64>,
}

/// Mirror of `api::InviteBody`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiInvite {
    email: String,
    role: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde::de::{self, Visitor};
    use serde::forward_to_deserialize_any;

    use super::*;

    /// A deserializer that only records the field list a derived `Deserialize` asks for.
    struct FieldList(Option<&'static [&'static str]>);

    impl<'de> de::Deserializer<'de> for &mut FieldList {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("only structs"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = Some(fields);
            Err(de::Error::custom("recorded"))
        }

        forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    fn fields<T: DeserializeOwned>() -> &'static [&'static str] {
        let mut list = FieldList(None);
        let _ = T::deserialize(&mut list);
        list.0.expect("a struct with named fields")
    }

    fn same_fields<R: DeserializeOwned, M: DeserializeOwned>() {
        assert_eq!(
            fields::<R>(),
            fields::<M>(),
            "the mirror of {} has other fields",
            std::any::type_name::<R>()
        );
    }

    #[test]
    fn mirrors_have_the_fields_of_the_handlers_input_types() {
        same_fields::<auth::SignupInput, Signup>();
        same_fields::<auth::NextQuery, Next>();
        same_fields::<auth::SigninInput, Signin>();
        same_fields::<auth::VerifyInput, Verify>();
        same_fields::<account::AccountInput, Account>();
        same_fields::<account::TokenInput, ApiToken>();
        same_fields::<gathering::TokenInput, GuestToken>();
        same_fields::<room_pages::UnlockInput, Unlock>();
        same_fields::<room_pages::RoomInput, RoomForm>();
        same_fields::<room_pages::DeleteInput, DeleteRoom>();
        same_fields::<spaces::SpaceInput, SpaceForm>();
        same_fields::<spaces::InviteInput, Invite>();
        same_fields::<governance::circle::RoleInput, WorkerRole>();
        same_fields::<governance::circle::SizeInput, CircleSize>();
        same_fields::<governance::elections::ElectionInput, ElectionForm>();
        same_fields::<governance::elections::NominateInput, Nominate>();
        same_fields::<governance::motions::MotionInput, MotionForm>();
        same_fields::<governance::motions::VoteInput, MotionVote>();
        same_fields::<SpaceBody, ApiSpace>();
        same_fields::<RoomBody, ApiRoom>();
        same_fields::<InviteBody, ApiInvite>();
    }

    #[test]
    fn extractors_finish_on_an_in_memory_body() {
        let room: RoomForm = decode_form::<room_pages::RoomInput, RoomForm>(
            b"name=Weekly+call&slug=&topic=&access=locked&access_code=open+sesame&capacity=12",
        )
        .expect("a valid Room form decodes");
        let (slug, fields) = room_form_fields(&room).expect("and validates");
        assert_eq!(slug.as_str(), "weekly-call");
        assert_eq!(fields.capacity, 12);
        let body = decode_json::<RoomBody, ApiRoom>(br#"{"name":"Standup","capacity":5}"#)
            .expect("a valid JSON body decodes");
        assert_eq!(body.capacity, Some(5));
        assert!(
            decode_json::<RoomBody, ApiRoom>(br#"{"name":"Standup","colour":"red"}"#).is_none(),
            "unknown fields are refused, as by the API"
        );
        let q = decode_query::<auth::NextQuery, Next>(b"next=%2Fspaces%2Fclub&email=a%40b.org")
            .expect("a query decodes");
        assert_eq!(q.next.as_deref(), Some("/spaces/club"));
    }

    #[test]
    fn every_listed_name_is_dispatched() {
        // The corpus is organised by these names; one missing from the dispatch fuzzes nothing.
        for name in FORMS {
            assert!(page_input(name.as_bytes(), b""), "form {name}");
        }
        for name in API_BODIES {
            assert!(api_body(name.as_bytes(), b"{}"), "API body {name}");
        }
        assert!(!page_input(b"nonsense", b""));
        assert_eq!(split(b"room\na=b"), (&b"room"[..], &b"a=b"[..]));
    }
}
