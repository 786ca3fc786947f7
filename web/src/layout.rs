//! The frame around every page: head, skip link, header with navigation, flash, footer.

use maud::{DOCTYPE, Markup, html};

use crate::assets;
use crate::components::{Icon, csrf_input, icon};
use crate::routes;
use crate::view::{FlashKind, PageContext};

/// Wraps `body` in the full HTML document. `title` is the page's own name; the instance's name
/// is appended (`{title} · {instance}`).
pub fn page(ctx: &PageContext, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · " (ctx.instance_name) }
                link rel="stylesheet"
                    href={ (assets::STYLE_CSS_PATH) "?v=" (assets::STYLE_CSS_VERSION) };
                link rel="icon" type="image/svg+xml" href=(assets::FAVICON_SVG_PATH);
            }
            body {
                a.skip-link href="#content" { "Skip to content" }
                (header(ctx))
                (flash(ctx))
                main #content tabindex="-1" {
                    div.wrap { (body) }
                }
                (footer(ctx))
            }
        }
    }
}

fn header(ctx: &PageContext) -> Markup {
    html! {
        header.site-header {
            div.wrap.header-row {
                a.brand href=(routes::HOME) {
                    span.brand-mark aria-hidden="true" { (brand_mark()) }
                    span.brand-name { (ctx.instance_name) }
                }
                nav.site-nav aria-label="Main" {
                    ul {
                        li { a href=(routes::HOME) { "Spaces" } }
                        li { a href=(crate::routes::GOVERNANCE) { "Governance" } }
                        @if let Some(user) = &ctx.user {
                            li { a href=(routes::NETWORK) { "Network" } }
                            @if user.is_operator {
                                li { a href=(routes::ADMIN_QUEUE) { "Queue" } }
                                li { a href=(routes::ADMIN_FEDERATION) { "Federation" } }
                            }
                            li {
                                a.nav-user href=(routes::ACCOUNT) title=(user.display_name) {
                                    "@" (user.handle)
                                    @if user.is_operator {
                                        " " span.nav-tag { "Operator" }
                                    }
                                }
                            }
                            li {
                                form.inline-form method="post" action=(routes::SIGNOUT) {
                                    (csrf_input(&ctx.csrf))
                                    button.btn.btn-quiet.btn-small type="submit" { "Sign out" }
                                }
                            }
                        } @else {
                            li { a href=(routes::SIGNIN) { "Sign in" } }
                            li { a.btn.btn-primary.btn-small href=(routes::SIGNUP) { "Sign up" } }
                        }
                    }
                }
            }
        }
    }
}

fn flash(ctx: &PageContext) -> Markup {
    html! {
        @if let Some(flash) = &ctx.flash {
            @let icon_name = match flash.kind {
                FlashKind::Success => Icon::Check,
                FlashKind::Error => Icon::Alert,
                FlashKind::Info => Icon::Info,
            };
            div class={ "flash flash-" (flash.kind.as_str()) } role="status" {
                div.wrap.flash-row { (icon(icon_name)) span { (flash.message) } }
            }
        }
    }
}

fn footer(ctx: &PageContext) -> Markup {
    html! {
        footer.site-footer {
            div.wrap.footer-row {
                p {
                    "Convene · AGPL-3.0-or-later · "
                    a href=(ctx.source_url) { "source" }
                }
                p.footer-domain { (ctx.instance_domain) }
            }
        }
    }
}

/// The door mark of the brand (same drawing as the favicon).
fn brand_mark() -> Markup {
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32" width="28" height="28"
            focusable="false" {
            rect width="32" height="32" rx="8" fill="currentColor" {}
            path d="M10 25V14.5a6 6 0 0 1 12 0V25z" fill="var(--brand-ink, #fff)" {}
            circle cx="18.6" cy="19.2" r="1.4" fill="currentColor" {}
        }
    }
}
