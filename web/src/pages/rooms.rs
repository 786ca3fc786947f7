//! Rooms: the Room page with its stage, and creating, editing and deleting Rooms.

use maud::{Markup, html};

use super::home::count;
use crate::assets;
use crate::components::{
    ButtonKind, Choice, Icon, TextField, Tone, access_badge, avatar, button, checkbox, icon,
    icon_badge, link_button, occupancy, page_header, post_button, post_form, radio_group,
    text_field,
};
use crate::layout::page;
use crate::routes;
use crate::view::{
    Access, FormErrors, JoinPanel, PageContext, RoomDeleteView, RoomForm, RoomView, Stage,
    UnlockForm,
};

/// `GET /spaces/{space}/rooms/{room}`: the Room, who is inside, and the stage.
pub fn room(ctx: &PageContext, view: &RoomView) -> Markup {
    let room_url = routes::room(&view.space_slug, &view.slug);
    let space_url = routes::space(&view.space_slug);
    let actions = view.can_edit.then(|| {
        html! {
            (link_button(&routes::room_edit(&view.space_slug, &view.slug), "Edit room", ButtonKind::Secondary, Some(Icon::Settings)))
            // Posting without the confirmation asks for it on the next page.
            (post_button(&routes::room_delete(&view.space_slug, &view.slug), &ctx.csrf,
                html! { "Delete room" }, ButtonKind::QuietDanger))
        }
    });
    let lead = html! {
        div.badges {
            @if view.is_entrance { (icon_badge("Entrance", Tone::Accent, Icon::Home)) }
            (access_badge(view.access))
            @if !view.listed { (icon_badge("Unlisted", Tone::Neutral, Icon::EyeOff)) }
        }
        @if !view.topic.is_empty() { p { (view.topic) } }
    };
    let inside = u32::try_from(view.inside.len()).unwrap_or(u32::MAX);
    let body = html! {
        (page_header(&[("Spaces", routes::HOME), (view.space_name.as_str(), space_url.as_str())],
            &view.name, Some(lead), actions))
        div.room-layout {
            section.stage aria-labelledby="stage-title" {
                @match &view.stage {
                    Stage::Join(panel) => { (join_panel(ctx, view, panel)) }
                    Stage::Locked(form) => { (unlock_panel(ctx, view, form, &room_url)) }
                    Stage::Full => {
                        div.stage-panel.stage-message {
                            span.stage-icon { (icon(Icon::People)) }
                            h2 #stage-title { "This room is full" }
                            p { "All " (view.capacity) " places are taken. Try again in a little while." }
                            (link_button(&room_url, "Check again", ButtonKind::Secondary, None))
                        }
                    }
                }
            }
            aside.room-aside aria-label="About this room" {
                section.card.aside-card {
                    h2 { "Who may enter" }
                    p.access-line { (access_badge(view.access)) }
                    p { (view.access.explanation()) }
                    @if !view.listed {
                        p.muted { "Unlisted: it is not shown on the Space page; people need the link." }
                    }
                }
                section.card.aside-card {
                    h2 { "Inside now" }
                    (occupancy(inside, view.capacity))
                    @if view.inside.is_empty() {
                        p.muted { "Nobody is here yet." }
                    } @else {
                        ul.people {
                            @for name in &view.inside {
                                li { (avatar(name)) span { (name) } }
                            }
                        }
                    }
                }
            }
        }
    };
    page(ctx, &view.name, body)
}

fn join_panel(ctx: &PageContext, view: &RoomView, panel: &JoinPanel) -> Markup {
    html! {
        div #room-app.stage-panel
            data-signal-url=(panel.signal_url)
            data-token-url=(panel.token_url)
            data-csrf=(ctx.csrf)
            data-room-name=(view.name)
            data-instance-domain=(ctx.instance_domain)
            data-visiting=[panel.visiting.as_ref().map(|(_, address)| address.as_str())]
            data-display-name=[ctx.user.as_ref().map(|u| u.display_name.as_str())
                .or(panel.visiting.as_ref().map(|(name, _)| name.as_str()))] {
            div.preview aria-hidden="true" {
                @match &ctx.user {
                    Some(user) => { (avatar(&user.display_name)) }
                    None => { span.preview-icon { (icon(Icon::Person)) } }
                }
            }
            div.join {
                h2 #stage-title { "Ready to join?" }
                // No action: the video client takes over this form; without it, submitting only
                // reloads the page, which is harmless.
                form #join-form.form {
                    (crate::components::csrf_input(&ctx.csrf))
                    @match &ctx.user {
                        Some(user) => {
                            p { "You'll join as " strong { (user.display_name) } " (@" (user.handle) ")." }
                        }
                        None if panel.visiting.is_some() => {
                            @if let Some((name, address)) = &panel.visiting {
                                p { "You'll join as " strong { (name) } " (" (address) "), visiting with your Passport." }
                            }
                        }
                        None => {
                            (text_field(&TextField::new("guest_name", "Your name")
                                .value(&panel.guest_name).required().maxlength(80)
                                .autocomplete("name")
                                .help("Shown to the others in the room. You're joining as a guest.")))
                        }
                    }
                    p.help { "You can check your camera and microphone before you join." }
                    div.form-actions {
                        button.btn.btn-primary.btn-large type="submit" { "Join" }
                    }
                }
                noscript {
                    p.callout.callout-info { "Video meetings need JavaScript. Turn it on in your browser to join." }
                }
                @if let Some(url) = &panel.elsewhere_url {
                    details.elsewhere {
                        summary { "Join with your Passport from another instance" }
                        form.form method="post" action=(url) novalidate {
                            (crate::components::csrf_input(&ctx.csrf))
                            (text_field(&TextField::new("address", "Your Passport")
                                .required().maxlength(300).spellcheck_off().autocomplete("username")
                                .help("Like @ada@example.org. Your instance asks you to confirm, then brings you here.")))
                            div.form-actions { (crate::components::button("Continue", crate::components::ButtonKind::Secondary)) }
                        }
                    }
                }
            }
        }
        // Linked here rather than in the head: only a visitor who may enter runs the client.
        link rel="stylesheet" href={ (assets::ROOM_CSS_PATH) "?v=" (assets::ROOM_CSS_VERSION) };
        script type="module" src=(assets::ROOM_JS_PATH) {}
    }
}

fn unlock_panel(ctx: &PageContext, view: &RoomView, form: &UnlockForm, room_url: &str) -> Markup {
    let errors = match &form.error {
        Some(message) => FormErrors::new().with("code", message.as_str()),
        None => FormErrors::new(),
    };
    let fields = html! {
        (text_field(&TextField::new("code", "Access code")
            .required().autocomplete("off").spellcheck_off().maxlength(64)
            .error(form.error.as_deref())))
        div.form-actions { (button("Unlock", ButtonKind::Primary)) }
    };
    html! {
        div.stage-panel.stage-message {
            span.stage-icon { (icon(Icon::Lock)) }
            h2 #stage-title { "This room is locked" }
            @if let Some(secs) = form.retry_after_secs {
                p.callout.callout-error role="alert" {
                    "Too many wrong codes. You can try again " (wait_phrase(secs)) "."
                }
                (link_button(room_url, "Try again", ButtonKind::Secondary, None))
            } @else {
                p { "Enter the access code to come in. If you don't have it, ask whoever invited you to " (view.name) "." }
                div.unlock-form {
                    (post_form(&routes::room_unlock(&view.space_slug, &view.slug), &ctx.csrf, &errors, fields))
                }
            }
        }
    }
}

/// "in 45 seconds", "in 3 minutes", "in about an hour".
fn wait_phrase(secs: u64) -> String {
    match secs {
        0..=1 => "now".to_owned(),
        2..=59 => format!("in {secs} seconds"),
        60..=119 => "in a minute".to_owned(),
        120..=3599 => format!("in {} minutes", secs.div_ceil(60)),
        _ => format!(
            "in about {}",
            count(
                usize::try_from(secs.div_ceil(3600)).unwrap_or(usize::MAX),
                "hour",
                "hours"
            )
        ),
    }
}

/// `GET /spaces/{space}/rooms/new` (and `POST /spaces/{space}/rooms` with errors).
pub fn room_new(ctx: &PageContext, form: &RoomForm) -> Markup {
    room_form(ctx, form)
}

/// `GET/POST /spaces/{space}/rooms/{room}/edit`: same fields as a new Room.
pub fn room_edit(ctx: &PageContext, form: &RoomForm) -> Markup {
    room_form(ctx, form)
}

fn room_form(ctx: &PageContext, form: &RoomForm) -> Markup {
    let space_url = routes::space(&form.space_slug);
    let (title, action, submit, cancel) = match &form.editing {
        Some(slug) => (
            "Edit room",
            routes::room_edit(&form.space_slug, slug),
            "Save changes",
            routes::room(&form.space_slug, slug),
        ),
        None => (
            "New room",
            routes::rooms(&form.space_slug),
            "Create room",
            space_url.clone(),
        ),
    };
    let members_hint = format!("Only members of {}.", form.space_name);
    let access_choices = [
        Choice::new(Access::Open.as_str(), "Open")
            .hint("Anyone with the link, including guests without a Passport."),
        Choice::new(Access::Members.as_str(), "Members").hint(&members_hint),
        Choice::new(Access::Locked.as_str(), "Locked").hint("Anyone who knows the access code."),
    ];
    let code_help = if form.code_is_set {
        "Leave empty to keep the current code. People type it to come in."
    } else {
        "Needed for locked rooms. People type it to come in; share it with those you invite."
    };
    // The full path is too long for an input prefix on a phone, so the help text carries it.
    let slug_help = if form.editing.is_some() {
        "Used in the room's link. Changing it breaks links people already have.".to_owned()
    } else {
        format!(
            "Used in the room's link, /spaces/{}/rooms/\u{2026}. Lowercase letters, digits and dashes.",
            form.space_slug
        )
    };
    let fields = html! {
        (text_field(&TextField::new("name", "Name")
            .value(&form.name).required().maxlength(80)
            .error(form.errors.get("name"))))
        (text_field(&TextField::new("slug", "Short name")
            .value(&form.slug).required().maxlength(40).spellcheck_off()
            .help(&slug_help)
            .error(form.errors.get("slug"))))
        (text_field(&TextField::new("topic", "Topic")
            .value(&form.topic).optional().maxlength(200)
            .help("What this room is for, in a few words.")
            .error(form.errors.get("topic"))))
        (radio_group("access", "Who may enter", &access_choices, form.access.as_str(), None,
            form.errors.get("access")))
        div.access-code-field {
            (text_field(&TextField::new("access_code", "Access code")
                .value(&form.access_code).autocomplete("off").spellcheck_off().maxlength(64)
                .help(code_help)
                .error(form.errors.get("access_code"))))
        }
        (radio_group("listed", "Who can find it", &[
                Choice::new("true", "Listed").hint("Its door is shown on the Space page."),
                Choice::new("false", "Unlisted").hint("Only people with the link can find it."),
            ],
            if form.listed { "true" } else { "false" }, None, form.errors.get("listed")))
        (text_field(&TextField::new("capacity", "Capacity")
            .input_type("number").value(&form.capacity).required().short()
            .inputmode("numeric").min("1").max("100")
            .help("How many people fit at once.")
            .error(form.errors.get("capacity"))))
        div.form-actions {
            (button(submit, ButtonKind::Primary))
            (link_button(&cancel, "Cancel", ButtonKind::Quiet, None))
        }
    };
    let body = html! {
        (page_header(&[("Spaces", routes::HOME), (form.space_name.as_str(), space_url.as_str())], title, None, None))
        div.card.form-card.form-wide.room-form {
            (post_form(&action, &ctx.csrf, &form.errors, fields))
        }
    };
    page(ctx, title, body)
}

/// The confirmation step of `POST /spaces/{space}/rooms/{room}/delete`: posting again with
/// `confirm=true` deletes the Room.
pub fn room_delete_confirm(ctx: &PageContext, view: &RoomDeleteView) -> Markup {
    let space_url = routes::space(&view.space_slug);
    let room_url = routes::room(&view.space_slug, &view.room_slug);
    let title = format!("Delete {}?", view.room_name);
    let confirm_label = format!("Yes, delete {}", view.room_name);
    let fields = html! {
        (checkbox("confirm", &confirm_label, false, None, view.errors.get("confirm")))
        div.form-actions {
            (button("Delete room", ButtonKind::Danger))
            (link_button(&room_url, "Keep it", ButtonKind::Quiet, None))
        }
    };
    let body = html! {
        (page_header(&[("Spaces", routes::HOME), (view.space_name.as_str(), space_url.as_str())], &title, None, None))
        div.card.form-card.form-wide.danger-zone {
            p.lead { "The room and its link go away for everyone. This can't be undone." }
            ul.consequences {
                @if view.inside > 0 {
                    li { (count(view.inside as usize, "person is", "people are")) " inside right now and will be disconnected." }
                }
                @if view.is_entrance {
                    li { "It is the entrance of " (view.space_name) "; the Space will have no entrance until you choose another." }
                }
            }
            (post_form(&routes::room_delete(&view.space_slug, &view.room_slug), &ctx.csrf, &view.errors, fields))
        }
    };
    page(ctx, &title, body)
}

#[cfg(test)]
mod tests {
    use super::wait_phrase;

    #[test]
    fn wait_phrase_rounds_up() {
        assert_eq!(wait_phrase(30), "in 30 seconds");
        assert_eq!(wait_phrase(61), "in a minute");
        assert_eq!(wait_phrase(121), "in 3 minutes");
        assert_eq!(wait_phrase(3600), "in about 1 hour");
    }
}
