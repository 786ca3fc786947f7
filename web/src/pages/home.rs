//! The landing page, notices and error pages.

use maud::{Markup, html};

use crate::components::{ButtonKind, Icon, empty_state, icon, link_button};
use crate::layout::page;
use crate::routes;
use crate::view::{LandingView, NoticeIcon, NoticeView, PageContext, SpaceCard};

/// `GET /`: the instance's listed Spaces.
pub fn landing(ctx: &PageContext, view: &LandingView) -> Markup {
    let tagline = if view.tagline.trim().is_empty() {
        "A place for our community to meet: pick a Space, walk into a Room, say hello."
    } else {
        view.tagline.as_str()
    };
    let body = html! {
        section.hero aria-labelledby="hero-title" {
            // Three doorways of different sizes: the product's picture of a place with rooms.
            div.hero-art aria-hidden="true" {
                span.arch.arch-1 {} span.arch.arch-2 {} span.arch.arch-3 {}
            }
            h1 #hero-title { (ctx.instance_name) }
            p.hero-tagline { (tagline) }
            @if ctx.user.is_none() || ctx.can_create_spaces {
                div.actions {
                    @if ctx.user.is_none() {
                        (link_button(routes::SIGNUP, "Create your Passport", ButtonKind::Primary, None))
                        (link_button(routes::SIGNIN, "Sign in", ButtonKind::Secondary, None))
                    }
                    @if ctx.can_create_spaces {
                        (link_button(routes::SPACE_NEW, "Create a Space",
                            if ctx.user.is_none() { ButtonKind::Secondary } else { ButtonKind::Primary },
                            Some(Icon::Plus)))
                    }
                }
            }
        }
        section.section aria-labelledby="spaces-title" {
            div.section-head {
                h2 #spaces-title { "Spaces" }
                @if !view.spaces.is_empty() {
                    p.muted { (count(view.spaces.len(), "Space", "Spaces")) }
                }
            }
            @if view.spaces.is_empty() {
                (empty_state(Icon::Door, "No Spaces yet",
                    "When a community opens a Space here, it will show up on this page.",
                    ctx.can_create_spaces.then(|| link_button(routes::SPACE_NEW,
                        "Create the first Space", ButtonKind::Primary, Some(Icon::Plus)))))
            } @else {
                ul.card-grid {
                    @for space in &view.spaces { (space_card(space)) }
                }
            }
        }
    };
    page(ctx, "Spaces", body)
}

fn space_card(space: &SpaceCard) -> Markup {
    html! {
        li.card.space-card {
            h3.card-title { a.card-link href=(space.url) { (space.name) } }
            @if space.description.is_empty() {
                p.muted { "No description yet." }
            } @else {
                p.card-text { (space.description) }
            }
            p.card-meta {
                span { (icon(Icon::Door)) (count(space.room_count as usize, "room", "rooms")) }
                @if space.people_inside > 0 {
                    span.live {
                        span.live-dot aria-hidden="true" {}
                        (count(space.people_inside as usize, "person", "people")) " in rooms now"
                    }
                } @else {
                    span { (icon(Icon::Person)) "Quiet right now" }
                }
            }
        }
    }
}

/// "1 room", "3 rooms".
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// A simple message page, e.g. "Check your email" after asking for an invitation.
pub fn notice(ctx: &PageContext, view: &NoticeView) -> Markup {
    let icon_name = match view.icon {
        NoticeIcon::Info => Icon::Info,
        NoticeIcon::Mail => Icon::Mail,
        NoticeIcon::Success => Icon::Check,
    };
    let body = html! {
        div.centered.card.notice {
            span.notice-icon { (icon(icon_name)) }
            h1 { (view.title) }
            p.lead { (view.message) }
            @if !view.links.is_empty() {
                div.actions.actions-center {
                    @for (i, link) in view.links.iter().enumerate() {
                        (link_button(&link.href, &link.label,
                            if i == 0 { ButtonKind::Primary } else { ButtonKind::Secondary }, None))
                    }
                }
            }
        }
    };
    page(ctx, &view.title, body)
}

/// The friendly title and one-sentence explanation for an HTTP status.
pub fn error_copy(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => (
            "That didn't work",
            "The request was not quite right. Go back and try again.",
        ),
        401 => ("Please sign in", "You need to sign in to see this page."),
        403 => (
            "You can't do that here",
            "Your Passport doesn't have permission for this.",
        ),
        404 => (
            "Page not found",
            "There is nothing here. The link may be old or mistyped.",
        ),
        409 => (
            "That clashes with something",
            "Something with the same name already exists, or it changed while you were working on it.",
        ),
        413 => (
            "That's too big",
            "What you sent is larger than this instance accepts.",
        ),
        422 => (
            "Please check what you sent",
            "Some of it could not be used as it is.",
        ),
        429 => (
            "Slow down a little",
            "There were too many attempts. Wait a moment, then try again.",
        ),
        503 => (
            "Back in a moment",
            "This instance is busy or being updated. Try again shortly.",
        ),
        _ if status >= 500 => (
            "Something went wrong on our side",
            "It is not your fault. Try again in a moment; if it keeps happening, tell the people who run this instance.",
        ),
        _ => ("That didn't work", "Go back and try again."),
    }
}

/// An error page with the default wording for `status` (see [`error_copy`]).
pub fn error_status(ctx: &PageContext, status: u16) -> Markup {
    let (title, message) = error_copy(status);
    error(ctx, status, title, message)
}

/// An error page: status, friendly title, one sentence, a way home. Works with
/// [`PageContext::bare`](crate::view::PageContext::bare) (no visitor, no CSRF token).
pub fn error(ctx: &PageContext, status: u16, title: &str, message: &str) -> Markup {
    let body = html! {
        div.centered.error-page {
            span.notice-icon { (icon(if status == 404 { Icon::Door } else { Icon::Alert })) }
            p.error-code { "Error " (status) }
            h1 { (title) }
            p.lead { (message) }
            div.actions.actions-center {
                (link_button(routes::HOME, "Go to the home page", ButtonKind::Primary, Some(Icon::Home)))
            }
        }
    };
    page(ctx, title, body)
}
