//! Page tests: every page in the sample gallery is checked for the layout's promises (labels,
//! CSRF, unique ids, landmarks), then individual pages for what they must and must not show.

use std::collections::HashSet;

use crate::sample::{self, CSRF};
use crate::view::*;
use crate::{assets, pages, routes};

/// One start tag: its name and attributes, in document order.
#[derive(Debug)]
struct Tag {
    name: String,
    attrs: Vec<(String, String)>,
}

impl Tag {
    fn get(&self, attr: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == attr)
            .map(|(_, v)| v.as_str())
    }
    fn has(&self, attr: &str) -> bool {
        self.attrs.iter().any(|(k, _)| k == attr)
    }
}

/// The start tags of `html`. Maud writes attributes as `name="value"` with `"` and `>` escaped
/// inside values, so scanning up to the next `>` is exact for its output.
fn tags(html: &str) -> Vec<Tag> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        if rest.starts_with('/') || rest.starts_with('!') {
            continue;
        }
        let Some(end) = rest.find('>') else { break };
        let inner = rest[..end].trim_end_matches('/');
        let (name, mut attrs_src) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
        let mut attrs = Vec::new();
        loop {
            attrs_src = attrs_src.trim_start();
            if attrs_src.is_empty() {
                break;
            }
            let key_end = attrs_src.find(['=', ' ']).unwrap_or(attrs_src.len());
            let key = attrs_src[..key_end].to_owned();
            attrs_src = &attrs_src[key_end..];
            if let Some(after_eq) = attrs_src.strip_prefix("=\"") {
                let close = after_eq.find('"').expect("maud closes attribute quotes");
                attrs.push((key, after_eq[..close].to_owned()));
                attrs_src = &after_eq[close + 1..];
            } else {
                attrs.push((key, String::new()));
            }
        }
        out.push(Tag {
            name: name.to_ascii_lowercase(),
            attrs,
        });
        rest = &rest[end..];
    }
    out
}

/// The `<form ...>...</form>` sections of `html` (forms never nest).
fn forms(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<form") {
        let end = rest[start..].find("</form>").expect("every form is closed") + start;
        out.push(&rest[start..end]);
        rest = &rest[end..];
    }
    out
}

fn gallery() -> Vec<(&'static str, String)> {
    sample::gallery()
        .into_iter()
        .map(|(name, markup)| (name, markup.into_string()))
        .collect()
}

fn csrf_field() -> String {
    format!(r#"<input type="hidden" name="csrf" value="{CSRF}">"#)
}

// ---------------------------------------------------------------------------------------------
// Across every page
// ---------------------------------------------------------------------------------------------

#[test]
fn every_post_form_carries_the_csrf_token() {
    let mut post_forms = 0;
    for (name, html) in gallery() {
        for form in forms(&html) {
            let tag = &tags(form)[0];
            if tag.get("method") == Some("post") {
                post_forms += 1;
                if name == "error-500-bare" {
                    continue; // a bare context has no token; checked separately
                }
                assert!(
                    form.contains(&csrf_field()),
                    "{name}: POST form without csrf: {form}"
                );
                assert!(
                    tag.get("action").is_some_and(|a| a.starts_with('/')),
                    "{name}: {form}"
                );
            }
        }
    }
    assert!(
        post_forms > 30,
        "the gallery should exercise many forms, saw {post_forms}"
    );
}

#[test]
fn every_control_has_a_label_and_ids_are_unique() {
    for (name, html) in gallery() {
        let tags = tags(&html);
        let mut ids = HashSet::new();
        for tag in &tags {
            if let Some(id) = tag.get("id") {
                assert!(ids.insert(id.to_owned()), "{name}: duplicate id {id}");
            }
        }
        let label_targets: HashSet<&str> = tags
            .iter()
            .filter(|t| t.name == "label")
            .filter_map(|t| t.get("for"))
            .collect();
        for tag in &tags {
            let is_control = matches!(tag.name.as_str(), "select" | "textarea")
                || (tag.name == "input" && tag.get("type") != Some("hidden"));
            if is_control {
                let id = tag
                    .get("id")
                    .unwrap_or_else(|| panic!("{name}: control without id: {tag:?}"));
                assert!(label_targets.contains(id), "{name}: no <label for={id}>");
            }
            if let Some(refs) = tag.get("aria-describedby") {
                for r in refs.split_whitespace() {
                    assert!(
                        ids.contains(r),
                        "{name}: aria-describedby points at missing id {r}"
                    );
                }
            }
        }
        for target in &label_targets {
            assert!(
                ids.contains(*target),
                "{name}: label for missing id {target}"
            );
        }
    }
}

#[test]
fn every_page_has_the_layout_landmarks() {
    for (name, html) in gallery() {
        assert!(
            html.starts_with("<!DOCTYPE html><html lang=\"en\">"),
            "{name}"
        );
        assert!(
            html.contains(
                r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#
            ),
            "{name}"
        );
        assert!(html.contains(" · Riverside Commons</title>"), "{name}");
        assert!(
            html.contains(r##"<a class="skip-link" href="#content">Skip to content</a>"##),
            "{name}"
        );
        assert!(html.contains(r#"<main id="content""#), "{name}");
        assert!(
            html.contains("<header") && html.contains("<footer"),
            "{name}"
        );
        assert!(html.contains("AGPL-3.0-or-later"), "{name}");
        let stylesheet = format!("/static/style.css?v={}", assets::STYLE_CSS_VERSION);
        assert!(html.contains(&stylesheet), "{name}");
        assert_eq!(html.matches("<h1").count(), 1, "{name}: one h1 per page");
        assert!(
            !html.contains("style=\""),
            "{name}: inline styles break a strict CSP"
        );
        // No external resources: everything comes from the instance itself.
        assert!(!html.contains("src=\"http"), "{name}");
        assert!(!html.contains("rel=\"stylesheet\" href=\"http"), "{name}");
    }
}

#[test]
fn fields_with_errors_are_invalid_described_and_summarised() {
    for (name, html) in gallery() {
        let tags = tags(&html);
        for tag in tags
            .iter()
            .filter(|t| t.get("aria-invalid") == Some("true"))
        {
            let id = tag.get("id").expect("invalid controls have ids");
            let field = tag.get("name").expect("invalid controls have names");
            let described = tag.get("aria-describedby").unwrap_or_default();
            // Radios share one error, which lives under the group's name.
            assert!(
                described.contains(&format!("{field}-error")) || tag.get("type") == Some("radio"),
                "{name}: {id} is invalid but not described by its error"
            );
            assert!(
                html.contains(&format!(r##"href="#{field}""##)),
                "{name}: summary lacks link to {field}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Navigation and flash
// ---------------------------------------------------------------------------------------------

#[test]
fn navigation_follows_the_visitor() {
    let guest = pages::landing(&sample::guest_context(), &sample::landing()).into_string();
    assert!(guest.contains(r#"href="/signin""#) && guest.contains(r#"href="/signup""#));
    assert!(!guest.contains(r#"action="/signout""#));

    let member = pages::landing(&sample::member_context(), &sample::landing()).into_string();
    assert!(member.contains(r#"<a class="nav-user" href="/me""#));
    assert!(member.contains("@ada"));
    let signout = forms(&member)
        .into_iter()
        .find(|f| f.contains(r#"action="/signout""#))
        .expect("sign-out form");
    assert!(signout.contains(&csrf_field()));
    assert!(signout.contains(r#"type="submit">Sign out</button>"#));
    assert!(!member.contains("Create your Passport"));
}

#[test]
fn flash_is_a_status_region_with_its_kind() {
    let mut ctx = sample::member_context();
    ctx.flash = Some(Flash::error("Could not save <that>."));
    let html = pages::landing(&ctx, &sample::landing()).into_string();
    assert!(
        html.contains(r#"<div class="flash flash-error" role="status">"#),
        "{html}"
    );
    assert!(html.contains("Could not save &lt;that&gt;."));
}

// ---------------------------------------------------------------------------------------------
// Landing and Spaces
// ---------------------------------------------------------------------------------------------

#[test]
fn landing_lists_spaces_and_offers_creation_only_when_allowed() {
    let html = pages::landing(&sample::guest_context(), &sample::landing()).into_string();
    assert!(html.contains(r#"href="/spaces/book-club""#));
    assert!(html.contains("3 rooms") && html.contains("4 people in rooms now"));
    assert!(html.contains("Garden Allotment Society"));
    assert!(!html.contains(r#"href="/spaces/new""#));

    let html = pages::landing(&sample::member_context(), &LandingView::default()).into_string();
    assert!(html.contains("No Spaces yet"));
    assert!(html.contains(r#"href="/spaces/new""#));
}

#[test]
fn space_page_shows_doors_with_the_entrance_first_and_marked() {
    let html = pages::space(&sample::member_context(), &sample::space()).into_string();
    let entrance = html
        .find(r#"<li class="door door-entrance">"#)
        .expect("entrance door marked");
    let lobby = html.find(">Lobby<").expect("lobby shown");
    let thursday = html
        .find(">Thursday discussion<")
        .expect("other door shown");
    assert!(entrance < lobby && lobby < thursday, "entrance first");
    assert_eq!(html.matches("door-entrance").count(), 1);
    assert!(html.contains(">Entrance</span>"));
    assert!(html.contains("3 of 12 inside"));
    assert!(html.contains("Full · 8 of 8 inside"));
    for access in ["Open", "Members", "Locked"] {
        assert!(html.contains(&format!("{access}</span>")), "{access} badge");
    }
    assert!(html.contains("Unlisted</span>"));
    assert!(html.contains(r#"href="/spaces/book-club/rooms/new""#));
    assert!(html.contains(r#"href="/spaces/book-club/edit""#));
    assert!(html.contains(r#"href="/spaces/book-club/members""#));
    assert!(html.contains("23 members"));
}

#[test]
fn space_page_hides_actions_the_visitor_cannot_take() {
    let view = SpaceView {
        your_role: None,
        can_create_rooms: false,
        can_manage: false,
        ..sample::space()
    };
    let html = pages::space(&sample::guest_context(), &view).into_string();
    assert!(!html.contains("/rooms/new"));
    assert!(!html.contains("/edit\""));
    assert!(!html.contains("/members\""));
    assert!(!html.contains("You are"));
    let header_meta = |html: &str| -> String {
        let after = html.split("class=\"meta-line\"").nth(1).expect("meta line");
        after.split("</p>").next().unwrap_or_default().to_owned()
    };
    assert!(
        !header_meta(&html).contains("Unlisted"),
        "a listed Space has no Unlisted badge"
    );

    let html = pages::space(
        &sample::member_context(),
        &SpaceView {
            listed: false,
            rooms: vec![],
            ..sample::space()
        },
    )
    .into_string();
    assert!(header_meta(&html).contains("Unlisted"), "{html}");
    assert!(html.contains("No rooms yet"));
    assert!(html.contains("Create the first room"));
}

#[test]
fn space_forms_keep_values_and_post_to_the_spec_routes() {
    let form = SpaceForm {
        name: "Book Club".into(),
        slug: "Book Club".into(),
        listed: false,
        errors: FormErrors::new().with("slug", "Use lowercase letters, digits and dashes."),
        ..SpaceForm::default()
    };
    let html = pages::space_new(&sample::member_context(), &form).into_string();
    assert!(html.contains(r#"action="/spaces""#));
    assert!(html.contains(r#"value="Book Club""#));
    assert!(!html.contains(r#"name="listed" value="true" checked"#));
    assert!(html.contains(r#"<label for="slug">"#));

    let edit = SpaceEditForm {
        space_slug: "book-club".into(),
        name: "Book Club".into(),
        listed: true,
        entrance_room: Some("lobby".into()),
        rooms: vec![
            RoomOption {
                slug: "quiet".into(),
                name: "Quiet".into(),
            },
            RoomOption {
                slug: "lobby".into(),
                name: "Lobby".into(),
            },
        ],
        ..SpaceEditForm::default()
    };
    let html = pages::space_edit(&sample::member_context(), &edit).into_string();
    assert!(html.contains(r#"action="/spaces/book-club/edit""#));
    assert!(
        html.contains(r#"<option value="lobby" selected>Lobby</option>"#),
        "{html}"
    );
    assert!(html.contains(r#"<option value="quiet">Quiet</option>"#));
    assert!(html.contains(r#"name="listed" value="true" checked"#));
}

#[test]
fn members_page_gives_owners_tools_and_members_only_the_list() {
    let html = pages::members(&sample::member_context(), &sample::members()).into_string();
    assert!(html.contains(r#"action="/spaces/book-club/members/mina/remove""#));
    assert!(
        !html.contains("/members/ada/remove"),
        "no remove button for yourself"
    );
    assert!(html.contains("/members/tomas%40social.example.net/remove"));
    assert!(html.contains(r#"action="/spaces/book-club/invitations/41/revoke""#));
    assert!(html.contains(r#"action="/spaces/book-club/invitations""#));
    assert!(html.contains(r#"action="/spaces/book-club/leave""#));
    assert!(html.contains("sam.lee@example.com"));
    assert!(html.contains(r#"action="/spaces/book-club/join-requests/7/approve""#));
    assert!(html.contains(r#"action="/spaces/book-club/join-requests/7/decline""#));
    assert!(html.contains(r#"action="/spaces/book-club/invitations/remote""#));
    assert!(html.contains("@noor@far.example"));

    let view = MembersView {
        can_manage: false,
        can_leave: false,
        ..sample::members()
    };
    let view = MembersView {
        members: view
            .members
            .into_iter()
            .map(|m| MemberRow {
                can_remove: false,
                ..m
            })
            .collect(),
        ..view
    };
    let html = pages::members(&sample::member_context(), &view).into_string();
    assert!(!html.contains("/remove\""));
    assert!(!html.contains("join-requests"), "requests are for owners");
    assert!(!html.contains("/invitations"));
    assert!(
        !html.contains("sam.lee@example.com"),
        "pending invitations are for owners"
    );
    assert!(!html.contains("/leave\""));
    assert!(html.contains("Mina Haddad"));
}

#[test]
fn invitation_states() {
    let ctx = sample::member_context();
    let html = pages::invitation(&ctx, &sample::invitation(InvitationState::Pending)).into_string();
    assert!(html.contains("invited you to join"));
    let accept = forms(&html)
        .into_iter()
        .find(|f| f.contains("/invitations/q2X9pLmv7Rk/accept"))
        .expect("accept form");
    assert!(accept.contains(&csrf_field()));
    assert!(html.contains(r#"action="/invitations/q2X9pLmv7Rk/decline""#));

    let html = pages::invitation(
        &sample::guest_context(),
        &sample::invitation(InvitationState::SignInRequired {
            signin_url: "/signin?next=%2Finvitations%2Fq2X9pLmv7Rk".into(),
            signup_url: "/signup".into(),
        }),
    )
    .into_string();
    assert!(html.contains(r#"href="/signin?next=%2Finvitations%2Fq2X9pLmv7Rk""#));
    assert!(!html.contains("/accept"));

    for (state, words) in [
        (InvitationState::Expired, "has expired"),
        (InvitationState::Revoked, "withdrawn"),
        (InvitationState::AlreadyUsed, "already used"),
        (InvitationState::AlreadyMember, "already a member"),
    ] {
        let html = pages::invitation(&ctx, &sample::invitation(state)).into_string();
        assert!(html.contains(words), "{words}");
        assert!(!html.contains("/accept"), "{words}: no accept button");
    }
}

// ---------------------------------------------------------------------------------------------
// Rooms
// ---------------------------------------------------------------------------------------------

#[test]
fn join_panel_mounts_the_client_only_when_the_visitor_may_enter() {
    let html = pages::room(
        &sample::member_context(),
        &sample::room_view(Stage::Join(sample::join_panel())),
    )
    .into_string();
    let app = tags(&html)
        .into_iter()
        .find(|t| t.get("id") == Some("room-app"))
        .expect("room-app placeholder");
    assert_eq!(
        app.get("data-signal-url"),
        Some("wss://commons.example.org/spaces/book-club/rooms/lobby/signal")
    );
    assert_eq!(
        app.get("data-token-url"),
        Some("/spaces/book-club/rooms/lobby/token")
    );
    assert_eq!(app.get("data-csrf"), Some(CSRF));
    assert!(html.contains(r#"<script type="module" src="/static/room.js"></script>"#));
    assert!(html.contains("<noscript>"));
    assert!(html.contains("You'll join as <strong>Ada Okafor</strong>"));
    assert!(
        !html.contains(r#"name="guest_name""#),
        "signed-in visitors need no guest name"
    );

    for stage in [Stage::Locked(UnlockForm::default()), Stage::Full] {
        let html = pages::room(&sample::guest_context(), &sample::room_view(stage)).into_string();
        assert!(!html.contains("room-app"), "{html}");
        assert!(!html.contains("room.js"));
        assert!(!html.contains("Ready to join"));
    }
}

#[test]
fn guests_of_open_rooms_give_their_name() {
    let mut panel = sample::join_panel();
    panel.guest_name = "Sam".into();
    let html = pages::room(
        &sample::guest_context(),
        &sample::room_view(Stage::Join(panel)),
    )
    .into_string();
    assert!(
        html.contains(r#"<label for="guest_name">Your name</label>"#),
        "{html}"
    );
    assert!(html.contains(r#"name="guest_name" type="text" value="Sam""#));
    assert!(!html.contains("data-display-name"));
}

#[test]
fn locked_room_shows_the_code_form_and_its_errors() {
    let view = RoomView {
        access: Access::Locked,
        ..sample::room_view(Stage::Locked(UnlockForm::default()))
    };
    let html = pages::room(&sample::guest_context(), &view).into_string();
    let form = forms(&html)
        .into_iter()
        .find(|f| f.contains("/unlock"))
        .expect("unlock form");
    assert!(form.contains(r#"action="/spaces/book-club/rooms/lobby/unlock""#));
    assert!(form.contains(&csrf_field()));
    assert!(form.contains(r#"<label for="code">Access code</label>"#));
    assert!(!form.contains("aria-invalid"));
    assert!(html.contains("Locked: enter the access code"));

    let wrong = RoomView {
        stage: Stage::Locked(UnlockForm {
            error: Some("That code doesn't open this room.".into()),
            retry_after_secs: None,
        }),
        ..view.clone()
    };
    let html = pages::room(&sample::guest_context(), &wrong).into_string();
    assert!(
        html.contains(r#"aria-invalid="true" aria-describedby="code-error""#),
        "{html}"
    );
    assert!(
        html.contains("That code doesn&#39;t open this room.")
            || html.contains("That code doesn't open this room.")
    );

    let limited = RoomView {
        stage: Stage::Locked(UnlockForm {
            error: None,
            retry_after_secs: Some(300),
        }),
        ..view
    };
    let html = pages::room(&sample::guest_context(), &limited).into_string();
    assert!(html.contains("Too many wrong codes. You can try again in 5 minutes."));
    assert!(
        !html.contains("/unlock"),
        "no form while the visitor must wait"
    );
}

#[test]
fn room_page_shows_who_is_inside_and_edit_tools_only_for_editors() {
    let html =
        pages::room(&sample::member_context(), &sample::room_view(Stage::Full)).into_string();
    assert!(html.contains("This room is full"));
    assert!(html.contains("Mina Haddad") && html.contains("3 of 12 inside"));
    assert!(html.contains(r#"href="/spaces/book-club/rooms/lobby/edit""#));
    assert!(html.contains(r#"action="/spaces/book-club/rooms/lobby/delete""#));
    assert!(
        html.contains(r#"href="/spaces/book-club""#),
        "breadcrumb to the Space"
    );

    let view = RoomView {
        inside: vec![],
        can_edit: false,
        ..sample::room_view(Stage::Full)
    };
    let html = pages::room(&sample::guest_context(), &view).into_string();
    assert!(html.contains("Nobody is here yet."));
    assert!(!html.contains("/edit\"") && !html.contains("/delete\""));
}

#[test]
fn room_form_keeps_choices_and_posts_to_new_or_edit() {
    let html = pages::room_new(
        &sample::member_context(),
        &RoomForm::new_room("Book Club", "book-club"),
    )
    .into_string();
    assert!(html.contains(r#"action="/spaces/book-club/rooms""#));
    assert!(
        html.contains(r#"id="access" name="access" value="open" checked"#),
        "{html}"
    );
    assert!(html.contains(r#"name="capacity" type="number" value="12""#));
    assert!(
        html.contains(r#"id="listed" name="listed" value="true" checked"#),
        "{html}"
    );
    assert!(html.contains(r#"id="listed-false" name="listed" value="false" aria-describedby"#));
    assert!(html.contains(r#"<label for="access_code">"#));

    let form = sample::room_form_locked_with_errors();
    let html = pages::room_edit(&sample::member_context(), &form).into_string();
    assert!(html.contains(r#"action="/spaces/book-club/rooms/back-room/edit""#));
    assert!(html.contains(r#"id="access-locked" name="access" value="locked" checked"#));
    assert!(
        html.contains(r#"value="Back Room""#),
        "submitted slug shown back"
    );
    assert!(html.contains(r#"name="capacity" type="number" value="0""#));
    assert!(html.contains(r#"id="listed-false" name="listed" value="false" checked"#));
    assert!(html.contains("There are 3 problems"));
    assert!(html.contains(r##"href="#access_code""##));
}

#[test]
fn room_delete_asks_for_confirmation() {
    let view = RoomDeleteView {
        space_name: "Book Club".into(),
        space_slug: "book-club".into(),
        room_name: "Lobby".into(),
        room_slug: "lobby".into(),
        inside: 3,
        is_entrance: true,
        errors: FormErrors::new().with("confirm", "Tick the box to confirm."),
    };
    let html = pages::room_delete_confirm(&sample::member_context(), &view).into_string();
    let form = forms(&html)
        .into_iter()
        .find(|f| f.contains("/delete"))
        .expect("delete form");
    assert!(form.contains(r#"name="confirm" value="true""#));
    assert!(form.contains(r#"<label for="confirm">"#));
    assert!(html.contains("3 people are inside right now"));
    assert!(html.contains("entrance of Book Club"));
    assert!(html.contains("Tick the box to confirm."));
}

// ---------------------------------------------------------------------------------------------
// Passports
// ---------------------------------------------------------------------------------------------

#[test]
fn signup_shows_the_handle_with_prefix_and_domain_and_inline_errors() {
    let form = SignupForm {
        email: "ada@example".into(),
        handle: "Ada!".into(),
        display_name: "Ada".into(),
        next: String::new(),
        errors: FormErrors::new().with("handle", "Use lowercase letters."),
    };
    let html = pages::signup(&sample::guest_context(), &form).into_string();
    assert!(html.contains(r#"action="/signup""#));
    assert!(html.contains(r#"<span class="affix affix-before">@</span>"#));
    assert!(html.contains(r#"<span class="affix affix-after">@commons.example.org</span>"#));
    assert!(html.contains(r#"value="Ada!""#));
    assert!(
        html.contains(r#"aria-invalid="true" aria-describedby="handle-help handle-error""#),
        "{html}"
    );
    assert!(html.contains(r#"<p class="field-error" id="handle-error">"#));
    let email = tags(&html)
        .into_iter()
        .find(|t| t.get("id") == Some("email"))
        .expect("email input");
    assert_eq!(email.get("type"), Some("email"));
    assert!(
        !email.has("aria-invalid"),
        "only fields with errors are invalid"
    );
}

#[test]
fn verify_asks_for_a_numeric_one_time_code() {
    let form = VerifyForm {
        email: "a+b@example.org".into(),
        code: String::new(),
        resend_url: routes::signin_with_email("a+b@example.org"),
        next: "/invitations/abc".into(),
        errors: FormErrors::new(),
    };
    let html = pages::verify(&sample::guest_context(), &form).into_string();
    let code = tags(&html)
        .into_iter()
        .find(|t| t.get("id") == Some("code"))
        .expect("code input");
    assert_eq!(code.get("inputmode"), Some("numeric"));
    assert_eq!(code.get("autocomplete"), Some("one-time-code"));
    assert!(html.contains(r#"<input type="hidden" name="email" value="a+b@example.org">"#));
    assert!(html.contains(r#"action="/verify?email=a%2Bb%40example.org""#));
    assert!(html.contains(r#"href="/signin?email=a%2Bb%40example.org""#));
    assert!(html.contains(r#"<input type="hidden" name="next" value="/invitations/abc">"#));
    let signin = pages::signin(&sample::guest_context(), &SigninForm::default()).into_string();
    assert!(
        !signin.contains(r#"name="next""#),
        "no next field when there is nowhere to return"
    );
}

#[test]
fn signin_and_account_forms() {
    let html = pages::signin(&sample::guest_context(), &SigninForm::default()).into_string();
    assert!(html.contains(r#"action="/signin""#) && html.contains(r#"autocomplete="email""#));

    let form = AccountForm {
        handle: "ada".into(),
        email: "ada@example.org".into(),
        display_name: "Ada Okafor".into(),
        errors: FormErrors::new(),
    };
    let html = pages::account(&sample::member_context(), &form).into_string();
    assert!(html.contains("@ada@commons.example.org"));
    assert!(html.contains("ada@example.org"));
    assert!(html.contains(r#"action="/me""#));
    assert!(html.contains(r#"href="/me/tokens""#));
    assert!(
        !html.contains(r#"name="handle""#),
        "the handle is not editable"
    );
}

#[test]
fn a_new_token_is_shown_once_and_tokens_can_be_revoked() {
    let html = pages::tokens(&sample::member_context(), &sample::tokens()).into_string();
    assert!(html.contains(r#"readonly rows="2" spellcheck="false">cvn_pat_7f3K9qLm2VxR8tYw4ZbN6hJd1sPc5gAe</textarea>"#), "{html}");
    assert!(html.contains("won't be shown again"));
    assert!(html.contains(r#"action="/me/tokens/3/revoke""#));
    assert!(html.contains("never used") && html.contains("last used 5 minutes ago"));
    assert!(html.contains(r#"action="/me/tokens""#));

    let view = TokensView {
        new_token: None,
        ..sample::tokens()
    };
    let html = pages::tokens(&sample::member_context(), &view).into_string();
    assert!(!html.contains("cvn_pat_"), "no secret unless just created");
    let html = pages::tokens(&sample::member_context(), &TokensView::default()).into_string();
    assert!(html.contains("No tokens yet"));
}

// ---------------------------------------------------------------------------------------------
// Errors and notices
// ---------------------------------------------------------------------------------------------

#[test]
fn error_pages_work_from_a_bare_context() {
    let ctx = PageContext::bare("Riverside <Commons>", "commons.example.org");
    for status in [400, 403, 404, 409, 413, 422, 429, 500] {
        let (title, message) = pages::error_copy(status);
        assert!(!title.is_empty() && message.ends_with('.'), "{status}");
        let html = pages::error_status(&ctx, status).into_string();
        assert!(html.contains(&format!("Error {status}")));
        assert!(html.contains(r#"href="/""#));
        assert!(html.contains("Riverside &lt;Commons&gt;"));
        assert!(
            !html.contains("csrf"),
            "a bare context renders no token field"
        );
        assert!(html.contains(r#"href="/signin""#));
    }
    assert_ne!(pages::error_copy(404), pages::error_copy(500));
    let html = pages::error(&ctx, 418, "Short and stout", "Tip me over.").into_string();
    assert!(html.contains("<title>Short and stout · Riverside &lt;Commons&gt;</title>"));
}

#[test]
fn notice_shows_its_links_first_as_the_main_action() {
    let view = NoticeView {
        icon: NoticeIcon::Mail,
        title: "Check your email".into(),
        message: "A code is on its way.".into(),
        links: vec![
            Link::new("Enter the code", "/verify"),
            Link::new("Back", "/"),
        ],
    };
    let html = pages::notice(&sample::guest_context(), &view).into_string();
    assert!(
        html.contains(r#"<a href="/verify" class="btn btn-primary">Enter the code</a>"#),
        "{html}"
    );
    assert!(html.contains(r#"<a href="/" class="btn btn-secondary">Back</a>"#));
}

// ---------------------------------------------------------------------------------------------
// Escaping
// ---------------------------------------------------------------------------------------------

#[test]
fn text_from_people_is_escaped_everywhere() {
    const EVIL: &str = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>";
    let mut ctx = sample::member_context();
    ctx.instance_name = EVIL.into();
    if let Some(user) = ctx.user.as_mut() {
        user.display_name = EVIL.into();
        user.handle = EVIL.into();
    }
    ctx.flash = Some(Flash::info(EVIL));

    let mut landing = sample::landing();
    landing.tagline = EVIL.into();
    landing.spaces[0].name = EVIL.into();
    landing.spaces[0].description = EVIL.into();

    let mut space = sample::space();
    space.name = EVIL.into();
    space.description = EVIL.into();
    space.rooms[0].name = EVIL.into();
    space.rooms[0].topic = EVIL.into();

    let mut room = sample::room_view(Stage::Join(JoinPanel {
        guest_name: EVIL.into(),
        visiting: Some((EVIL.into(), EVIL.into())),
        ..sample::join_panel()
    }));
    room.name = EVIL.into();
    room.topic = EVIL.into();
    room.space_name = EVIL.into();
    room.inside = vec![EVIL.into()];

    let mut members = sample::members();
    members.space_name = EVIL.into();
    members.members[1].display_name = EVIL.into();
    members.invitations[0].email = EVIL.into();

    let mut guest_ctx = ctx.clone();
    guest_ctx.user = None;

    let rendered = [
        pages::landing(&ctx, &landing).into_string(),
        pages::space(&ctx, &space).into_string(),
        pages::room(&ctx, &room).into_string(),
        pages::room(&guest_ctx, &room).into_string(),
        pages::members(&ctx, &members).into_string(),
        pages::invitation(
            &ctx,
            &InvitationView {
                inviter: EVIL.into(),
                space_name: EVIL.into(),
                ..sample::invitation(InvitationState::Pending)
            },
        )
        .into_string(),
        pages::error(&ctx, 404, EVIL, EVIL).into_string(),
    ];
    for html in rendered {
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            tags(&html).iter().all(|t| !t.has("onerror")),
            "attribute break-out: {html}"
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }
}

#[test]
fn election_result_words_every_kind_of_event_and_shows_keep_factors() {
    use crate::governance_view::{EventView, ResultView, RoundView, TieDecision};
    let view = ResultView {
        election_title: "Residents 2026".into(),
        election_url: routes::election(1),
        candidates: vec!["Ann".into(), "Ben <b>".into()],
        elected: vec!["Ann".into()],
        rounds: vec![RoundView {
            number: 1,
            description: "First preferences".into(),
            quota: Some("6".into()),
            votes: vec!["8".into(), "4.5".into()],
            keep_factors: Some(vec!["0.638888889".into(), "1".into()]),
            non_transferable: "0".into(),
            rounding: Some("0.00001".into()),
            iterations: Some(3),
            events: vec![
                EventView::Elected {
                    name: "Ann".into(),
                    votes: "8".into(),
                },
                EventView::SurplusTransferred {
                    name: "Ann".into(),
                    surplus: "2".into(),
                    transferred: "1.99999".into(),
                    non_transferable: "0".into(),
                    rounding: "0.00001".into(),
                },
                EventView::TieBroken {
                    purpose: "exclusion".into(),
                    tied: vec!["Cal".into(), "Dee".into()],
                    chosen: "Dee".into(),
                    decided_by: TieDecision::Lot {
                        draw_number: 1,
                        draw: 42,
                    },
                },
                EventView::TieBroken {
                    purpose: "surplus order".into(),
                    tied: vec!["Eve".into(), "Fay".into()],
                    chosen: "Fay".into(),
                    decided_by: TieDecision::EarlierRound { round: 2 },
                },
                EventView::Excluded {
                    name: "Ben <b>".into(),
                    votes: "4.5".into(),
                },
            ],
        }],
        ..ResultView::default()
    };
    let html = pages::election_result(&sample::member_context(), &view).into_string();
    for words in [
        "Round 1: First preferences",
        "<strong>Ann</strong> is elected with 8.",
        "The surplus of Ann (2) is transferred: 1.99999 to continuing candidates, 0 non-transferable, 0.00001 lost to rounding.",
        "Tie (exclusion) between Cal, Dee: Dee chosen by lot (draw 1 from the seed, value 42).",
        "Tie (surplus order) between Eve, Fay: Fay chosen by the votes at round 2.",
        "Ben &lt;b&gt; is excluded with 4.5.",
        "Keep factor",
        "0.638888889",
        "Lost to rounding",
        "3 iteration(s)",
    ] {
        assert!(html.contains(words), "{words:?} in {html}");
    }
}

/// The job queue page shows every destination's state, each dead job's error, and a retry
/// button only where something is left to send.
#[test]
fn queue_page_lists_destinations_and_dead_jobs() {
    let html = pages::queue(&sample::member_context(), &sample::queue()).into_string();
    assert!(html.contains("smtps://mail.example.org:465"));
    assert!(html.contains(">failing<"), "the state badge");
    assert!(html.contains("(421): too many connections"));
    assert!(html.contains("(550): no such mailbox"));
    assert!(html.contains(&format!("action=\"{}\"", routes::admin_queue_retry(42))));
    assert!(
        !html.contains(&routes::admin_queue_retry(17)),
        "nothing left to send"
    );
    assert!(html.contains("nothing left to send"));
    let empty = pages::queue(
        &sample::member_context(),
        &crate::queue_view::QueueView::default(),
    )
    .into_string();
    assert!(empty.contains("No dead jobs") && empty.contains("Nothing has been queued yet"));
}

#[test]
fn visit_page_reads_a_remote_room_and_asks_to_confirm() {
    let view = crate::pages::VisitView {
        input: "https://far.example/spaces/garden/rooms/shed".into(),
        error: None,
        room: Some(crate::pages::RemoteRoomView {
            id: "https://far.example/spaces/garden/rooms/shed".into(),
            name: "Potting Shed".into(),
            space: Some("Garden".into()),
            host: "far.example".into(),
            access: "open".into(),
            capacity: 12,
            head_count: 3,
            standing: None,
        }),
        address: "@ada@commons.example.org".into(),
        elsewhere: vec![
            crate::pages::ElsewhereRow {
                name: "Quiet Corner".into(),
                state: "waiting for the owners".into(),
                visit_url:
                    "/visit?room=https%3A%2F%2Ffar.example%2Fspaces%2Fgarden%2Frooms%2Fcorner"
                        .into(),
                room: "https://far.example/spaces/garden/rooms/corner".into(),
                head_count: None,
                can_enter: false,
            },
            crate::pages::ElsewhereRow {
                name: "Reading Room".into(),
                state: "member".into(),
                visit_url:
                    "/visit?room=https%3A%2F%2Ffar.example%2Fspaces%2Fgarden%2Frooms%2Freading"
                        .into(),
                room: "https://far.example/spaces/garden/rooms/reading".into(),
                head_count: Some((2, 8)),
                can_enter: true,
            },
            crate::pages::ElsewhereRow {
                name: "Far Attic".into(),
                state: "member".into(),
                visit_url: "/visit?room=https%3A%2F%2Fgone.example%2Fspaces%2Fx%2Frooms%2Fattic"
                    .into(),
                room: "https://gone.example/spaces/x/rooms/attic".into(),
                head_count: None,
                can_enter: true,
            },
        ],
        invitations: vec![crate::pages::InvitationElsewhereRow {
            invite_id: "https://far.example/spaces/garden#invite-1".into(),
            space_name: "Garden".into(),
            space_url: "https://far.example/spaces/garden".into(),
        }],
    };
    let html = pages::visit(&sample::member_context(), &view).into_string();
    assert!(html.contains("Join <strong>Potting Shed</strong> on far.example as <strong>@ada@commons.example.org</strong>?"));
    assert!(html.contains("3 of 12"));
    assert!(html.contains("Quiet Corner</a>") && html.contains("waiting for the owners"));
    // Members see who is inside and enter in one click; a Room that cannot be read says so.
    assert!(html.contains("<span class=\"head-count\">2 of 8 inside</span>"));
    assert!(html.contains("<span class=\"head-count\">can't be reached just now</span>"));
    assert_eq!(html.matches("<span class=\"head-count\">").count(), 2);
    assert!(
        html.contains("name=\"room\" value=\"https://far.example/spaces/garden/rooms/reading\"")
    );
    assert!(
        !html.contains("name=\"room\" value=\"https://far.example/spaces/garden/rooms/corner\"")
    );
    assert!(html.contains("Enter<span class=\"visually-hidden\"> Reading Room</span>"));
    assert!(html.contains(&format!("action=\"{}\"", routes::visit_invitation(true))));
    assert!(html.contains("value=\"https://far.example/spaces/garden#invite-1\""));
    assert!(html.contains(&format!("action=\"{}\"", routes::VISIT)));
    assert!(html.contains("name=\"room\" value=\"https://far.example/spaces/garden/rooms/shed\""));
    let empty = pages::visit(
        &sample::member_context(),
        &crate::pages::VisitView {
            error: Some("That address is not a Room.".into()),
            ..Default::default()
        },
    )
    .into_string();
    assert!(!empty.contains("remote-room") && empty.contains("That address is not a Room."));
}

#[test]
fn a_visitor_from_another_instance_joins_under_its_address_and_guests_may_name_one() {
    let visiting = sample::room_view(Stage::Join(JoinPanel {
        visiting: Some(("Ada".into(), "@ada@far.example".into())),
        elsewhere_url: None,
        ..sample::join_panel()
    }));
    let html = pages::room(&sample::guest_context(), &visiting).into_string();
    assert!(html.contains("<strong>Ada</strong> (@ada@far.example)"));
    assert!(!html.contains("name=\"guest_name\""));
    let guest = pages::room(
        &sample::guest_context(),
        &sample::room_view(Stage::Join(sample::join_panel())),
    )
    .into_string();
    assert!(guest.contains("name=\"guest_name\""));
    assert!(guest.contains(&format!(
        "action=\"{}\"",
        routes::room_elsewhere("book-club", "lobby")
    )));
}

#[test]
fn gatherings_page_counts_per_node_and_marks_this_process() {
    use crate::queue_view::GatheringRow;
    let row = |room: &str, node: &str, here: bool| GatheringRow {
        space_name: "Book Club".into(),
        space_slug: "book-club".into(),
        room_name: room.into(),
        room_slug: room.to_lowercase(),
        node: node.into(),
        here,
        seated: here.then_some(3),
        lease_until: "28 Nov 2026, 16:04:05 UTC".into(),
    };
    let rows = [
        row("Lobby", "http://10.0.0.1:8080", true),
        row("Garden", "http://10.0.0.2:8080", false),
        row("Kitchen", "http://10.0.0.2:8080", false),
    ];
    let html = pages::gatherings(&sample::member_context(), &rows).into_string();
    assert!(html.contains("http://10.0.0.1:8080</code>: 1 gathering<"));
    assert!(html.contains("http://10.0.0.2:8080</code>: 2 gatherings<"));
    assert!(html.contains("this process"));
    assert!(html.contains("held elsewhere"));
    assert!(html.contains(&format!(
        "href=\"{}\"",
        routes::room("book-club", "kitchen")
    )));
    let empty = pages::gatherings(&sample::member_context(), &[]).into_string();
    assert!(empty.contains("No live gatherings"));
}

/// Operators reach the job queue from the navigation; nobody else is shown the link.
#[test]
fn only_operators_see_the_queue_in_the_navigation() {
    let link = format!("href=\"{}\"", routes::ADMIN_QUEUE);
    let operator = pages::landing(&sample::member_context(), &sample::landing()).into_string();
    assert!(operator.contains(&link));
    let guest = pages::landing(&sample::guest_context(), &sample::landing()).into_string();
    assert!(!guest.contains(&link));
    let mut member = sample::member_context();
    if let Some(user) = member.user.as_mut() {
        user.is_operator = false;
    }
    let member = pages::landing(&member, &sample::landing()).into_string();
    assert!(!member.contains(&link));
}
