//! Visiting Rooms on other instances with one's Passport (issue 9).

use maud::{Markup, html};

use crate::components::{ButtonKind, TextField, button, page_header, post_form, text_field};
use crate::layout::page;
use crate::routes;
use crate::view::{FormErrors, PageContext};

/// A Room on another instance, as its actor describes it.
#[derive(Debug, Clone, Default)]
pub struct RemoteRoomView {
    /// The Room's actor id (its page).
    pub id: String,
    pub name: String,
    pub space: Option<String>,
    pub host: String,
    /// "open", "members only" or "locked".
    pub access: String,
    pub capacity: u32,
    pub head_count: u32,
    /// For members-only Rooms: where the person's request to join stands (`asked`,
    /// `waiting`, `accepted`, `rejected`) and the Room's reason, if any.
    pub standing: Option<(String, Option<String>)>,
}

/// `GET /visit`: the form, and once a Room was read, what it is and the confirmation.
#[derive(Debug, Clone, Default)]
pub struct VisitView {
    /// What the person pasted.
    pub input: String,
    pub error: Option<String>,
    pub room: Option<RemoteRoomView>,
    /// The person's address (`@ada@home`), as the Room will show them.
    pub address: String,
    /// Rooms elsewhere the person asked to join.
    pub elsewhere: Vec<ElsewhereRow>,
    /// Invitations to Spaces elsewhere, waiting for an answer.
    pub invitations: Vec<InvitationElsewhereRow>,
}

/// An invitation to a Space on another instance.
#[derive(Debug, Clone, Default)]
pub struct InvitationElsewhereRow {
    pub invite_id: String,
    pub space_name: String,
    /// The Space's actor id (its page there).
    pub space_url: String,
}

/// A Room on another instance the person asked to join.
#[derive(Debug, Clone, Default)]
pub struct ElsewhereRow {
    pub name: String,
    /// "member", "waiting for the owners" or "declined".
    pub state: String,
    /// Its visit page here (what it is, who is inside, and the way in).
    pub visit_url: String,
    /// The Room's actor id, for the one-click "Enter" of members.
    pub room: String,
    /// For members: who is inside now, as the Room's actor says (`None` when it could not be
    /// read just now).
    pub head_count: Option<(u32, u32)>,
    /// A member may enter at once.
    pub can_enter: bool,
}

/// "3 of 12 inside", "nobody inside", or that the Room could not be read just now.
fn head_count_text(count: Option<(u32, u32)>) -> String {
    match count {
        None => "can't be reached just now".to_owned(),
        Some((0, _)) => "nobody inside".to_owned(),
        Some((inside, 0)) => format!("{inside} inside"),
        Some((inside, capacity)) => format!("{inside} of {capacity} inside"),
    }
}

pub fn visit(ctx: &PageContext, view: &VisitView) -> Markup {
    let body = html! {
        (page_header(&[], "Visit a Room elsewhere",
            Some(html! { p { "Your Passport works on other instances too: paste the link of a Room there, "
                "and you'll enter it as " strong { (view.address) } ", without an account there." } }),
            None))
        div.stack {
            @if let Some(room) = &view.room {
                section.card aria-labelledby="remote-room-title" #remote-room {
                    h2 #remote-room-title { (room.name) }
                    dl.facts {
                        @if let Some(space) = &room.space {
                            div { dt { "Space" } dd { (space) } }
                        }
                        div { dt { "Instance" } dd.break-anywhere { (room.host) } }
                        div { dt { "Who may enter" } dd { (room.access) } }
                        div { dt { "Inside now" } dd { (room.head_count) " of " (room.capacity) } }
                    }
                    @let state = room.standing.as_ref().map(|(state, _)| state.as_str());
                    @if room.access == "members only" && state != Some("accepted") {
                        @match state {
                            Some("asked") | Some("waiting") => {
                                p.callout.callout-info #join-standing { "You asked to join. The Space's owners on " (room.host) " decide; come back here once they have." }
                            }
                            Some("rejected") => {
                                p.callout.callout-error #join-standing {
                                    "Your request to join was declined"
                                    @if let Some((_, Some(reason))) = &room.standing { ": " (reason) } @else { "." }
                                }
                            }
                            _ => {
                                p.callout.callout-info { "This Room is for its Space's members. Ask to join: the Space's owners on " (room.host) " decide." }
                            }
                        }
                        @if !matches!(state, Some("asked") | Some("waiting")) {
                            (post_form(routes::VISIT_JOIN, &ctx.csrf, &FormErrors::new(), html! {
                                input type="hidden" name="room" value=(room.id);
                                div.form-actions { (button("Ask to join", ButtonKind::Primary)) }
                            }))
                        }
                    } @else {
                        (post_form(routes::VISIT, &ctx.csrf, &FormErrors::new(), html! {
                            input type="hidden" name="room" value=(room.id);
                            p { "Join " strong { (room.name) } " on " (room.host) " as " strong { (view.address) } "?" }
                            div.form-actions { (button("Join", ButtonKind::Primary)) }
                        }))
                    }
                }
            }
            @if !view.invitations.is_empty() {
                section.card aria-labelledby="invitations-elsewhere-title" #invitations-elsewhere {
                    h2 #invitations-elsewhere-title { "Invitations from other instances" }
                    ul.rows {
                        @for invitation in &view.invitations {
                            li.row {
                                div.row-main {
                                    span.row-title { a href=(invitation.space_url) { (invitation.space_name) } }
                                    span.row-meta.break-anywhere { (invitation.space_url) }
                                }
                                div.row-actions {
                                    form method="post" action=(routes::visit_invitation(true)) {
                                        (crate::components::csrf_input(&ctx.csrf))
                                        input type="hidden" name="invite" value=(invitation.invite_id);
                                        (button("Accept", ButtonKind::Primary))
                                    }
                                    form method="post" action=(routes::visit_invitation(false)) {
                                        (crate::components::csrf_input(&ctx.csrf))
                                        input type="hidden" name="invite" value=(invitation.invite_id);
                                        (button("Decline", ButtonKind::Secondary))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !view.elsewhere.is_empty() {
                section.card aria-labelledby="elsewhere-title" #rooms-elsewhere {
                    h2 #elsewhere-title { "Your Rooms elsewhere" }
                    ul.rows {
                        @for row in &view.elsewhere {
                            li.row {
                                div.row-main {
                                    span.row-title { a href=(row.visit_url) { (row.name) } }
                                    span.row-meta {
                                        (row.state)
                                        @if row.can_enter {
                                            " · " span.head-count { (head_count_text(row.head_count)) }
                                        }
                                    }
                                }
                                @if row.can_enter {
                                    div.row-actions {
                                        form.inline-form method="post" action=(routes::VISIT) {
                                            (crate::components::csrf_input(&ctx.csrf))
                                            input type="hidden" name="room" value=(row.room);
                                            button.btn.btn-primary type="submit" {
                                                "Enter" span.visually-hidden { " " (row.name) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section.card aria-labelledby="visit-form-title" {
                h2 #visit-form-title { "Room link" }
                form.form method="get" action=(routes::VISIT) novalidate {
                    (text_field(&TextField::new("room", "Link of a Room's page")
                        .value(&view.input).required().maxlength(2000).spellcheck_off()
                        .help("For example https://meet.example.org/spaces/garden/rooms/shed")
                        .error(view.error.as_deref())))
                    div.form-actions { (button("Look it up", ButtonKind::Secondary)) }
                }
            }
        }
    };
    page(ctx, "Visit a Room elsewhere", body)
}
