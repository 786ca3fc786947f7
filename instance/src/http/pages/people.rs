//! A Passport's page: who they are, at the URL that is also their ActivityPub actor's id (so a
//! person's address found through WebFinger opens somewhere in a browser).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use convene_web::view::{Link, NoticeIcon, NoticeView};

use super::context;
use crate::app::AppState;
use crate::domain::passports;
use crate::domain::values::Handle;
use crate::error::{AppError, Result};
use crate::http::visitor::Visitor;

/// `GET /people/{handle}`: the Passport's name and federated address.
pub async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(handle): Path<String>,
) -> Result<Response> {
    let handle = Handle::parse(&handle).map_err(|_| AppError::NotFound)?;
    let passport = passports::by_handle(&state.db, &handle)
        .await?
        .ok_or(AppError::NotFound)?;
    let view = NoticeView {
        icon: NoticeIcon::Info,
        title: passport.display_name.to_string(),
        message: passport.address(&state.settings.domain()),
        links: vec![Link {
            label: "Spaces on this instance".into(),
            href: "/".into(),
        }],
    };
    Ok(convene_web::pages::notice(&context(&state, &visitor), &view).into_response())
}
