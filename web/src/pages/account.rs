//! The visitor's own Passport: display name and personal access tokens.

use maud::{Markup, html};

use crate::components::{
    ButtonKind, Icon, TextField, button, empty_state, icon, page_header, post_button, post_form,
    text_field,
};
use crate::layout::page;
use crate::routes;
use crate::view::{AccountForm, PageContext, TokensView};

/// `GET/POST /me`: display name (editable), handle and email (shown).
pub fn account(ctx: &PageContext, form: &AccountForm) -> Markup {
    let fields = html! {
        (text_field(&TextField::new("display_name", "Display name")
            .value(&form.display_name).required()
            .autocomplete("name").maxlength(80)
            .help("What people see in Rooms and member lists.")
            .error(form.errors.get("display_name"))))
        div.form-actions { (button("Save", ButtonKind::Primary)) }
    };
    let body = html! {
        (page_header(&[], "Your Passport", None, None))
        div.stack {
            section.card aria-labelledby="passport-title" {
                h2 #passport-title { "Passport" }
                dl.facts {
                    div { dt { "Handle" } dd.break-anywhere { "@" (form.handle) "@" (ctx.instance_domain) } }
                    div { dt { "Email" } dd.break-anywhere { (form.email) } }
                }
                p.help { "Your handle can't be changed. Sign-in codes go to this email address." }
            }
            section.card aria-labelledby="profile-title" {
                h2 #profile-title { "Profile" }
                (post_form(routes::ACCOUNT, &ctx.csrf, &form.errors, fields))
            }
            section.card.link-card aria-labelledby="tokens-title" {
                span.link-card-icon { (icon(Icon::Key)) }
                div {
                    h2 #tokens-title { a href=(routes::TOKENS) { "Access tokens" } }
                    p.muted { "Let scripts and apps use the Convene API as you." }
                }
            }
            section.card.link-card aria-labelledby="visit-title" {
                span.link-card-icon { (icon(Icon::Person)) }
                div {
                    h2 #visit-title { a href=(routes::VISIT) { "Visit a Room elsewhere" } }
                    p.muted { "Your Passport opens Rooms on other instances too, under @" (ctx.user.as_ref().map_or("", |u| u.handle.as_str())) "@" (ctx.instance_domain) "." }
                }
            }
        }
    };
    page(ctx, "Your Passport", body)
}

/// `GET/POST /me/tokens`: the token list, a just-created token shown once, and the create form.
pub fn tokens(ctx: &PageContext, view: &TokensView) -> Markup {
    let create_fields = html! {
        (text_field(&TextField::new("name", "Token name")
            .value(&view.form.name).required().maxlength(80)
            .help("Something to remember it by, like \"backup script\".")
            .error(view.form.errors.get("name"))))
        div.form-actions { (button("Create token", ButtonKind::Primary)) }
    };
    let body = html! {
        (page_header(&[("Your Passport", routes::ACCOUNT)], "Access tokens",
            Some(html! { p { "Tokens let scripts and apps use the Convene API as you. Treat them like passwords." } }),
            None))
        div.stack {
            @if let Some(new_token) = &view.new_token {
                section.card.callout.callout-success aria-labelledby="new-token-title" {
                    h2 #new-token-title { (icon(Icon::Check)) "Your new token \u{201c}" (new_token.name) "\u{201d}" }
                    p { strong { "Copy it now." } " For your safety it won't be shown again." }
                    div.field {
                        label for="new-token" { "Token" }
                        // A textarea wraps the whole secret on narrow screens, unlike an input.
                        textarea #new-token.token-secret readonly rows="2" spellcheck="false" {
                            (new_token.secret)
                        }
                    }
                    p.help { "Send it in the " code { "Authorization: Bearer \u{2026}" } " header." }
                }
            }
            section.card aria-labelledby="tokens-list-title" {
                h2 #tokens-list-title { "Your tokens" }
                @if view.tokens.is_empty() {
                    (empty_state(Icon::Key, "No tokens yet", "Create one below when a script or app needs to act for you.", None))
                } @else {
                    ul.rows {
                        @for token in &view.tokens {
                            li.row {
                                div.row-main {
                                    span.row-title { (token.name) }
                                    span.row-meta {
                                        "Created " (token.created) " · "
                                        @match &token.last_used {
                                            Some(when) => { "last used " (when) }
                                            None => { "never used" }
                                        }
                                    }
                                }
                                div.row-actions {
                                    (post_button(&routes::token_revoke(&token.id), &ctx.csrf,
                                        html! { "Revoke" span.visually-hidden { " " (token.name) } },
                                        ButtonKind::QuietDanger))
                                }
                            }
                        }
                    }
                }
            }
            section.card aria-labelledby="token-new-title" {
                h2 #token-new-title { "New token" }
                (post_form(routes::TOKENS, &ctx.csrf, &view.form.errors, create_fields))
            }
        }
    };
    page(ctx, "Access tokens", body)
}
