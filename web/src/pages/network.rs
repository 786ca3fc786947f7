//! The Network page (Spaces followed on other instances, with their Rooms, and the partners'
//! directory) and the partner policy page for operators.

use maud::{Markup, html};

use crate::components::{
    ButtonKind, Choice, Icon, TextField, Tone, badge, button, csrf_input, empty_state, page_header,
    post_button, post_form, select, text_field,
};
use crate::layout::page;
use crate::network_view::{FederationAdminView, NetworkView, PartnerRow};
use crate::routes;
use crate::view::PageContext;

fn follow_state(state: &str) -> Markup {
    match state {
        "accepted" => badge("following", Tone::Success),
        "rejected" => badge("refused", Tone::Warning),
        _ => badge("waiting for the Space", Tone::Accent),
    }
}

fn access_text(access: &str) -> &'static str {
    match access {
        "open" => "open",
        "members-only" => "members only",
        "locked" => "locked",
        _ => "unknown access",
    }
}

/// `GET /network`: the follow form, the Spaces followed elsewhere with their Rooms, and the
/// partners.
pub fn network(ctx: &PageContext, view: &NetworkView) -> Markup {
    let fields = html! {
        (text_field(&TextField::new("handle", "Space elsewhere")
            .value(&view.follow.handle).required().maxlength(500).spellcheck_off()
            .help("Its address, like @garden@social.example, or the link to its page.")
            .error(view.follow.errors.get("handle"))))
        div.form-actions {
            (button("Follow", ButtonKind::Primary))
        }
    };
    let body = html! {
        (page_header(&[], "Network",
            Some(html! { p { "Spaces on other instances that you follow, with their Rooms as their Spaces last announced them." } }),
            None))
        div.stack {
            section.card.form-card aria-labelledby="network-follow-title" {
                h2 #network-follow-title { "Follow a Space elsewhere" }
                (post_form(routes::NETWORK_FOLLOW, &ctx.csrf, &view.follow.errors, fields))
            }
            section.card aria-labelledby="network-following-title" #network-following {
                h2 #network-following-title { "Spaces you follow" }
                @if view.spaces.is_empty() {
                    (empty_state(Icon::Info, "None yet", "Paste a Space's address above to follow it.", None))
                } @else {
                    ul.stack.remote-spaces {
                        @for space in &view.spaces {
                            li.remote-space {
                                h3 {
                                    a href=(space.url) rel="noopener" { (space.name) }
                                    " " span.muted { (space.handle) }
                                    " " (follow_state(&space.state))
                                }
                                @if !space.summary.is_empty() { p { (space.summary) } }
                                @if space.rooms.is_empty() {
                                    p.muted { "No Rooms announced yet." }
                                } @else {
                                    ul.remote-rooms {
                                        @for room in &space.rooms {
                                            li.remote-room {
                                                a href=(room.url) rel="noopener" { (room.name) }
                                                " · " (access_text(&room.access))
                                                " · " span.head-count { (room.head_count) " inside" }
                                                " of " (room.capacity)
                                            }
                                        }
                                    }
                                }
                                (post_button(&space.unfollow_url, &ctx.csrf,
                                    html! { "Unfollow" span.visually-hidden { " " (space.name) } },
                                    ButtonKind::Secondary))
                            }
                        }
                    }
                }
            }
            section.card aria-labelledby="network-partners-title" #network-partners {
                h2 #network-partners-title { "Partner instances" }
                p.help { "Instances this one federates with, and the Spaces they list." }
                @if view.partners.is_empty() {
                    p.muted { "This instance has no listed partners." }
                } @else {
                    ul {
                        @for partner in &view.partners {
                            li {
                                a href=(partner.url) rel="noopener" { (partner.domain) }
                                @if let Some(software) = &partner.software { " " span.muted { "(" (software) ")" } }
                                @if !partner.spaces.is_empty() {
                                    ul.partner-spaces {
                                        @for space in &partner.spaces {
                                            li {
                                                a href=(space.url) rel="noopener" { (space.name) }
                                                " "
                                                form.inline-form method="post" action=(routes::NETWORK_FOLLOW) {
                                                    (csrf_input(&ctx.csrf))
                                                    input type="hidden" name="handle" value=(space.url);
                                                    button.btn.btn-quiet.btn-small type="submit" {
                                                        "Follow" span.visually-hidden { " " (space.name) }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(ctx, "Network", body)
}

fn partner_table(ctx: &PageContext, id: &str, rows: &[PartnerRow], remove_label: &str) -> Markup {
    html! {
        div.gov-table-wrap {
            table.gov-table id=(id) {
                thead { tr {
                    th scope="col" { "Instance" } th scope="col" { "Software" } th scope="col" { "Reachable" }
                    th scope="col" { "Deliveries" } th scope="col" { span.visually-hidden { "Actions" } }
                } }
                tbody {
                    @for p in rows {
                        tr {
                            th scope="row" .break-anywhere { (p.domain) }
                            td {
                                @if let Some(software) = &p.software {
                                    (software) @if let Some(v) = &p.version { " " (v) }
                                } @else { span.muted { "unknown" } }
                            }
                            td {
                                @match p.reachable {
                                    Some(true) => (badge("reachable", Tone::Success)),
                                    Some(false) => (badge("unreachable", Tone::Warning)),
                                    None => span.muted { "not checked" },
                                }
                                @if let Some(note) = &p.check_note { " " span.muted.break-anywhere { (note) } }
                                @if let Some(at) = &p.checked { " " span.muted { "(" (at) ")" } }
                            }
                            td .break-anywhere {
                                @if let Some(state) = &p.queue_state {
                                    (state) ", " (p.pending) " waiting"
                                    @if let Some(e) = &p.last_error { " · " (e) }
                                } @else { span.muted { "nothing sent yet" } }
                            }
                            td {
                                (post_button(&p.check_url, &ctx.csrf, html! { "Check" span.visually-hidden { " " (p.domain) } }, ButtonKind::Quiet))
                                (post_button(&p.remove_url, &ctx.csrf, html! { (remove_label) span.visually-hidden { " " (p.domain) } }, ButtonKind::Secondary))
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /admin/federation`: the policy mode, partners and blocked instances with what their
/// NodeInfo said and their delivery queue, and the forms to change them.
pub fn federation_admin(ctx: &PageContext, view: &FederationAdminView) -> Markup {
    let mode_fields = html! {
        (select("mode", "Federate with", &[
            Choice::new("open", "Open: every instance that is not blocked"),
            Choice::new("allow-list", "Partners only (allow list)"),
            Choice::new("block-list", "Block list: every instance except the blocked ones"),
        ], &view.mode, Some("With partners only, every other instance gets 403 and nothing is sent to it."), view.errors.get("mode")))
        div.form-actions { (button("Save", ButtonKind::Primary)) }
    };
    let domain_fields = html! {
        (text_field(&TextField::new("domain", "Instance")
            .value(&view.domain).required().maxlength(260).spellcheck_off()
            .help("A host name, like social.example.org. Adding a partner reads its NodeInfo.")
            .error(view.errors.get("domain"))))
        div.form-actions {
            button.btn.btn-primary type="submit" name="action" value="allow" { "Add partner" }
            " "
            button.btn.btn-secondary type="submit" name="action" value="block" { "Block" }
        }
    };
    let body = html! {
        (page_header(&[], "Federation",
            Some(html! { p { "Which instances this one federates with. The same is set with "
                code { "convene admin federation" } "." } }),
            None))
        div.stack {
            section.card.form-card aria-labelledby="fed-mode-title" {
                h2 #fed-mode-title { "Policy" }
                (post_form(&format!("{}/policy", routes::ADMIN_FEDERATION), &ctx.csrf, &crate::view::FormErrors::new(), mode_fields))
            }
            section.card.form-card aria-labelledby="fed-add-title" {
                h2 #fed-add-title { "Add a partner or block an instance" }
                (post_form(&format!("{}/partners", routes::ADMIN_FEDERATION), &ctx.csrf, &view.errors, domain_fields))
            }
            section.card aria-labelledby="fed-partners-title" {
                h2 #fed-partners-title { "Partners" }
                @if view.partners.is_empty() {
                    p.muted { "No partners yet." }
                } @else {
                    (partner_table(ctx, "fed-partners", &view.partners, "Remove"))
                }
            }
            section.card aria-labelledby="fed-blocked-title" {
                h2 #fed-blocked-title { "Blocked" }
                @if view.blocked.is_empty() {
                    p.muted { "No instance is blocked." }
                } @else {
                    (partner_table(ctx, "fed-blocked", &view.blocked, "Unblock"))
                }
            }
            section.card.form-card aria-labelledby="fed-passports-title" #blocked-passports {
                h2 #fed-passports-title { "Blocked Passports" }
                p.muted { "One person of another instance, where blocking their whole instance would be too much. "
                    "They get no entry to Rooms here and lose their memberships; if they are in a Room, their media ends at once." }
                @if !view.blocked_passports.is_empty() {
                    ul.rows {
                        @for (address, unblock_url) in &view.blocked_passports {
                            li.row {
                                div.row-main { span.row-title { (address) } }
                                div.row-actions {
                                    (post_button(unblock_url, &ctx.csrf,
                                        html! { "Unblock" span.visually-hidden { " " (address) } },
                                        ButtonKind::Secondary))
                                }
                            }
                        }
                    }
                }
                (post_form(&format!("{}/passports", routes::ADMIN_FEDERATION), &ctx.csrf, &crate::view::FormErrors::new(), html! {
                    (text_field(&TextField::new("address", "Passport")
                        .value(&view.passport_address).required().maxlength(320).spellcheck_off()
                        .help("An address on another instance, like @ada@social.example.org.")
                        .error(view.errors.get("address"))))
                    div.form-actions { (button("Block Passport", ButtonKind::Secondary)) }
                }))
            }
        }
    };
    page(ctx, "Federation", body)
}
