//! Spaces: creating, the Space page with its doors, editing, members and invitations.

use maud::{Markup, html};

use super::SLUG_HELP;
use super::home::count;
use crate::components::{
    ButtonKind, Choice, Icon, TextField, Tone, avatar, badge, button, checkbox, door_card,
    empty_state, icon, icon_badge, link_button, page_header, post_button, post_form, select,
    text_field,
};
use crate::layout::page;
use crate::routes;
use crate::view::{
    InvitationState, InvitationView, MembersView, PageContext, Role, SpaceEditForm, SpaceForm,
    SpaceView,
};

/// `GET /spaces/new` (and `POST /spaces` with errors): name, slug, description, listed.
pub fn space_new(ctx: &PageContext, form: &SpaceForm) -> Markup {
    let fields = html! {
        (text_field(&TextField::new("name", "Name")
            .value(&form.name).required().maxlength(80)
            .error(form.errors.get("name"))))
        (text_field(&TextField::new("slug", "Short name")
            .value(&form.slug).required().maxlength(40).spellcheck_off()
            .prefix("/spaces/")
            .help(SLUG_HELP)
            .error(form.errors.get("slug"))))
        (text_field(&TextField::new("description", "Description")
            .value(&form.description).optional().multiline().maxlength(500)
            .help("One or two sentences about who meets here.")
            .error(form.errors.get("description"))))
        (checkbox("listed", "List this Space on the home page", form.listed,
            Some("Unlisted Spaces can only be reached by their link."),
            form.errors.get("listed")))
        div.form-actions {
            (button("Create Space", ButtonKind::Primary))
            (link_button(routes::HOME, "Cancel", ButtonKind::Quiet, None))
        }
    };
    let body = html! {
        (page_header(&[("Spaces", routes::HOME)], "Create a Space",
            Some(html! { p { "A Space is your community's place: it has members and Rooms where people meet." } }),
            None))
        div.card.form-card.form-wide {
            (post_form(routes::SPACES, &ctx.csrf, &form.errors, fields))
        }
    };
    page(ctx, "Create a Space", body)
}

/// `GET /spaces/{space}`: header, actions, and the Rooms as doors (entrance first).
pub fn space(ctx: &PageContext, view: &SpaceView) -> Markup {
    let mut doors: Vec<_> = view.rooms.iter().collect();
    // The entrance is where newcomers should walk in, so it leads; the rest keep their order.
    doors.sort_by_key(|door| !door.is_entrance);
    let actions = (view.can_manage || view.can_create_rooms).then(|| {
        html! {
            @if view.can_manage {
                (link_button(&routes::members(&view.slug), "Members", ButtonKind::Secondary, Some(Icon::People)))
                (link_button(&routes::space_edit(&view.slug), "Edit space", ButtonKind::Secondary, Some(Icon::Settings)))
            }
            @if view.can_create_rooms {
                (link_button(&routes::room_new(&view.slug), "New room", ButtonKind::Primary, Some(Icon::Plus)))
            }
        }
    });
    let lead = html! {
        @if !view.description.is_empty() { p { (view.description) } }
        p.meta-line {
            span { (icon(Icon::People)) (count(view.member_count as usize, "member", "members")) }
            @if !view.listed { (icon_badge("Unlisted", Tone::Neutral, Icon::EyeOff)) }
            @if let Some(role) = view.your_role {
                span { "You are " (if role == Role::Owner { "an owner" } else { "a member" }) }
            }
        }
    };
    let body = html! {
        (page_header(&[("Spaces", routes::HOME)], &view.name, Some(lead), actions))
        section.section aria-labelledby="rooms-title" {
            div.section-head {
                h2 #rooms-title { "Rooms" }
                @if !doors.is_empty() { p.muted { (count(doors.len(), "room", "rooms")) } }
            }
            @if doors.is_empty() {
                (empty_state(Icon::Door, "No rooms yet",
                    "Rooms are where people meet. Once there is one, you'll find its door here.",
                    view.can_create_rooms.then(|| link_button(&routes::room_new(&view.slug),
                        "Create the first room", ButtonKind::Primary, Some(Icon::Plus)))))
            } @else {
                ul.door-grid {
                    @for door in doors { (door_card(door)) }
                }
            }
        }
    };
    page(ctx, &view.name, body)
}

/// `GET/POST /spaces/{space}/edit`: name, description, listed, entrance Room.
pub fn space_edit(ctx: &PageContext, form: &SpaceEditForm) -> Markup {
    let mut choices = vec![Choice::new("", "No entrance room")];
    choices.extend(form.rooms.iter().map(|r| Choice::new(&r.slug, &r.name)));
    let fields = html! {
        (text_field(&TextField::new("name", "Name")
            .value(&form.name).required().maxlength(80)
            .error(form.errors.get("name"))))
        (text_field(&TextField::new("description", "Description")
            .value(&form.description).optional().multiline().maxlength(500)
            .error(form.errors.get("description"))))
        (select("entrance_room", "Entrance room", &choices,
            form.entrance_room.as_deref().unwrap_or(""),
            Some("Where newcomers should walk in. Its door is shown first."),
            form.errors.get("entrance_room")))
        (checkbox("listed", "List this Space on the home page", form.listed,
            Some("Unlisted Spaces can only be reached by their link."),
            form.errors.get("listed")))
        div.form-actions {
            (button("Save changes", ButtonKind::Primary))
            (link_button(&routes::space(&form.space_slug), "Cancel", ButtonKind::Quiet, None))
        }
    };
    let body = html! {
        (page_header(&[("Spaces", routes::HOME), (form.name.as_str(), routes::space(&form.space_slug).as_str())],
            "Edit space", None, None))
        div.card.form-card.form-wide {
            (post_form(&routes::space_edit(&form.space_slug), &ctx.csrf, &form.errors, fields))
        }
    };
    page(ctx, "Edit space", body)
}

/// `GET /spaces/{space}/members`: members, pending invitations, the invite form, leaving.
pub fn members(ctx: &PageContext, view: &MembersView) -> Markup {
    let space_url = routes::space(&view.space_slug);
    let invite_fields = html! {
        div.form-row {
            (text_field(&TextField::new("email", "Email address")
                .input_type("email").value(&view.invite.email).required()
                .autocomplete("off").spellcheck_off()
                .error(view.invite.errors.get("email"))))
            (select("role", "Role",
                &[Choice::new("member", "Member"), Choice::new("owner", "Owner")],
                view.invite.role.as_str(), None, view.invite.errors.get("role")))
        }
        p.help { "The invitation link works for 14 days. Owners can edit the Space and manage its members." }
        div.form-actions { (button("Send invitation", ButtonKind::Primary)) }
    };
    let body = html! {
        (page_header(&[("Spaces", routes::HOME), (view.space_name.as_str(), space_url.as_str())], "Members",
            Some(html! { p { (count(view.members.len(), "person", "people")) " in " (view.space_name) } }),
            None))
        div.stack {
            section.card aria-labelledby="members-title" {
                h2 #members-title { "Members" }
                ul.rows {
                    @for member in &view.members {
                        li.row {
                            (avatar(&member.display_name))
                            div.row-main {
                                span.row-title {
                                    (member.display_name)
                                    @if member.is_you { " " (badge("You", Tone::Neutral)) }
                                }
                                span.row-meta {
                                    span.break-anywhere { "@" (member.handle) }
                                    " "
                                    @if member.role == Role::Owner {
                                        (badge("Owner", Tone::Accent))
                                    } @else {
                                        (badge("Member", Tone::Neutral))
                                    }
                                }
                            }
                            div.row-actions {
                                @if member.can_remove && !member.is_you {
                                    (post_button(&routes::member_remove(&view.space_slug, &member.handle), &ctx.csrf,
                                        html! { "Remove" span.visually-hidden { " " (member.display_name) } },
                                        ButtonKind::QuietDanger))
                                }
                            }
                        }
                    }
                }
            }
            @if view.can_manage && !view.join_requests.is_empty() {
                section.card aria-labelledby="join-requests-title" #join-requests {
                    h2 #join-requests-title { "Asking to join from other instances" }
                    p.help { "People with a Passport elsewhere who asked to enter a members-only Room. Letting them in makes them members." }
                    ul.rows {
                        @for request in &view.join_requests {
                            li.row {
                                (avatar(&request.display_name))
                                div.row-main {
                                    span.row-title { (request.display_name) }
                                    span.row-meta {
                                        span.break-anywhere { (request.address) }
                                        " · for " (request.room_name)
                                    }
                                }
                                div.row-actions {
                                    (post_button(&request.approve_url, &ctx.csrf,
                                        html! { "Let in" span.visually-hidden { " " (request.address) } },
                                        ButtonKind::Secondary))
                                    (post_button(&request.decline_url, &ctx.csrf,
                                        html! { "Decline" span.visually-hidden { " " (request.address) } },
                                        ButtonKind::QuietDanger))
                                }
                            }
                        }
                    }
                }
            }
            @if view.can_manage {
                section.card aria-labelledby="invitations-title" {
                    h2 #invitations-title { "Pending invitations" }
                    @if view.invitations.is_empty() {
                        p.muted { "No invitations waiting for an answer." }
                    } @else {
                        ul.rows {
                            @for invitation in &view.invitations {
                                li.row {
                                    span.row-icon { (icon(Icon::Mail)) }
                                    div.row-main {
                                        span.row-title.break-anywhere { (invitation.email) }
                                        span.row-meta {
                                            "As " (invitation.role.label().to_lowercase())
                                            " · expires " (invitation.expires)
                                        }
                                    }
                                    div.row-actions {
                                        (post_button(&routes::invitation_revoke(&view.space_slug, &invitation.id), &ctx.csrf,
                                            html! { "Revoke" span.visually-hidden { " the invitation for " (invitation.email) } },
                                            ButtonKind::QuietDanger))
                                    }
                                }
                            }
                        }
                    }
                }
                section.card aria-labelledby="invite-remote-title" {
                    h2 #invite-remote-title { "Invite someone from another instance" }
                    form.form method="post" action=(routes::remote_invitation(&view.space_slug)) novalidate {
                        (crate::components::csrf_input(&ctx.csrf))
                        (text_field(&TextField::new("address", "Their Passport")
                            .required().maxlength(300).spellcheck_off().autocomplete("off")
                            .help("Like @ada@example.org. They answer on their own instance; accepting makes them a member here.")))
                        div.form-actions { (button("Invite", ButtonKind::Secondary)) }
                    }
                }
                @if !view.follow_requests.is_empty() {
                    section.card aria-labelledby="follow-requests-title" #follow-requests {
                        h2 #follow-requests-title { "Follow requests from other instances" }
                        p.help { "This Space is unlisted, so follows from elsewhere wait for an owner. Approved followers hear of its new Rooms." }
                        ul.rows {
                            @for request in &view.follow_requests {
                                li.row {
                                    span.row-icon { (icon(Icon::Globe)) }
                                    div.row-main {
                                        span.row-title.break-anywhere { (request.actor) }
                                        span.row-meta { (request.host) " · asked " (request.requested) }
                                    }
                                    div.row-actions {
                                        (post_button(&request.approve_url, &ctx.csrf,
                                            html! { "Approve" span.visually-hidden { " " (request.actor) } },
                                            ButtonKind::Secondary))
                                        (post_button(&request.reject_url, &ctx.csrf,
                                            html! { "Reject" span.visually-hidden { " " (request.actor) } },
                                            ButtonKind::QuietDanger))
                                    }
                                }
                            }
                        }
                    }
                }
                section.card aria-labelledby="invite-title" {
                    h2 #invite-title { "Invite someone" }
                    (post_form(&routes::invitations(&view.space_slug), &ctx.csrf, &view.invite.errors, invite_fields))
                }
            }
            @if view.can_leave {
                section.card.danger-zone aria-labelledby="leave-title" {
                    h2 #leave-title { "Leave this Space" }
                    p.muted { "You'll lose access to its members-only Rooms. An owner can invite you again." }
                    (post_button(&routes::leave(&view.space_slug), &ctx.csrf,
                        html! { "Leave " (view.space_name) }, ButtonKind::Danger))
                }
            }
        }
    };
    page(ctx, &format!("Members of {}", view.space_name), body)
}

/// `GET /invitations/{token}`: accept or decline, or why that's not possible.
pub fn invitation(ctx: &PageContext, view: &InvitationView) -> Markup {
    let as_role = if view.role == Role::Owner {
        "an owner"
    } else {
        "a member"
    };
    let (title, icon_name) = match &view.state {
        InvitationState::Pending | InvitationState::SignInRequired { .. } => {
            ("You're invited", Icon::Mail)
        }
        InvitationState::Expired => ("This invitation has expired", Icon::Alert),
        InvitationState::Revoked => ("This invitation was withdrawn", Icon::Alert),
        InvitationState::AlreadyUsed => ("This invitation was already used", Icon::Info),
        InvitationState::AlreadyMember => ("You're already a member", Icon::Check),
    };
    let space_link = html! { a href=(view.space_url) { (view.space_name) } };
    let body = html! {
        div.centered.card.notice {
            span.notice-icon { (icon(icon_name)) }
            h1 { (title) }
            @match &view.state {
                InvitationState::Pending => {
                    p.lead { strong { (view.inviter) } " invited you to join " strong { (view.space_name) } " as " (as_role) "." }
                    div.actions.actions-center {
                        (post_button(&routes::invitation_accept(&view.token), &ctx.csrf,
                            html! { "Accept and join" }, ButtonKind::Primary))
                        (post_button(&routes::invitation_decline(&view.token), &ctx.csrf, html! { "Decline" }, ButtonKind::Secondary))
                    }
                }
                InvitationState::SignInRequired { signin_url, signup_url } => {
                    p.lead { strong { (view.inviter) } " invited you to join " strong { (view.space_name) } " as " (as_role) "." }
                    p { "Sign in with your Passport to accept. New here? Create one first; it only takes a minute." }
                    div.actions.actions-center {
                        (link_button(signin_url, "Sign in", ButtonKind::Primary, None))
                        (link_button(signup_url, "Create your Passport", ButtonKind::Secondary, None))
                    }
                }
                InvitationState::Expired => {
                    p.lead { "Invitations last 14 days. Ask " (view.inviter) " to send you a new one." }
                }
                InvitationState::Revoked => {
                    p.lead { "The invitation to " (view.space_name) " was taken back. If that seems wrong, ask " (view.inviter) "." }
                }
                InvitationState::AlreadyUsed => {
                    p.lead { "Each invitation can be answered once. Visit " (space_link) " to see where it led." }
                }
                InvitationState::AlreadyMember => {
                    p.lead { "Your Passport already belongs to " (view.space_name) "." }
                    div.actions.actions-center {
                        (link_button(&view.space_url, "Go to the Space", ButtonKind::Primary, None))
                    }
                }
            }
        }
    };
    page(ctx, title, body)
}
