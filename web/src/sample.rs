//! Sample view models for every page, and the whole set of pages rendered with them.
//!
//! The gallery example writes [`gallery`] to static files for looking at the design, and the
//! tests check invariants (labels, CSRF fields, unique ids) across all of it, so a new page
//! added here is checked without writing new tests. The instance may use these too, e.g. to
//! check its error pages against the same rules.

use maud::Markup;

use crate::pages;
use crate::routes;
use crate::view::*;

/// The CSRF token of the sample contexts.
pub const CSRF: &str = "sample-csrf-token";

/// A signed-out visitor on the sample instance.
pub fn guest_context() -> PageContext {
    PageContext {
        instance_name: "Riverside Commons".to_owned(),
        instance_domain: "commons.example.org".to_owned(),
        user: None,
        csrf: CSRF.to_owned(),
        flash: None,
        can_create_spaces: false,
        source_url: DEFAULT_SOURCE_URL.to_owned(),
    }
}

/// A signed-in operator on the sample instance.
pub fn member_context() -> PageContext {
    PageContext {
        user: Some(NavUser {
            handle: "ada".to_owned(),
            display_name: "Ada Okafor".to_owned(),
            is_operator: true,
        }),
        can_create_spaces: true,
        ..guest_context()
    }
}

fn with_flash(mut ctx: PageContext, flash: Flash) -> PageContext {
    ctx.flash = Some(flash);
    ctx
}

pub fn landing() -> LandingView {
    let card = |name: &str, slug: &str, description: &str, rooms: u32, people: u32| SpaceCard {
        name: name.to_owned(),
        slug: slug.to_owned(),
        description: description.to_owned(),
        room_count: rooms,
        people_inside: people,
        url: routes::space(slug),
    };
    LandingView {
        tagline: "The neighbourhood's meeting place: clubs, repair cafés and the Tuesday choir."
            .to_owned(),
        spaces: vec![
            card(
                "Book Club",
                "book-club",
                "We read one novel a month and talk about it on the last Thursday. Newcomers welcome, spoilers not.",
                3,
                4,
            ),
            card(
                "Repair Café",
                "repair-cafe",
                "Bring something broken; volunteers help you fix it over video before the Saturday meet-up.",
                2,
                0,
            ),
            card(
                "Garden Allotment Society",
                "allotments",
                "Seed swaps, rota planning and the occasional slug debate.",
                5,
                11,
            ),
            card("Choir", "choir", "", 1, 0),
        ],
    }
}

pub fn door(name: &str, slug: &str, topic: &str, access: Access, inside: u32) -> RoomDoor {
    RoomDoor {
        name: name.to_owned(),
        slug: slug.to_owned(),
        topic: topic.to_owned(),
        access,
        listed: true,
        capacity: 12,
        inside,
        is_entrance: false,
        url: routes::room("book-club", slug),
    }
}

pub fn space() -> SpaceView {
    let mut lobby = door(
        "Lobby",
        "lobby",
        "Say hello, find out what we're reading this month.",
        Access::Open,
        3,
    );
    lobby.is_entrance = true;
    let mut back = door(
        "Back room",
        "back-room",
        "Organisers' planning corner.",
        Access::Locked,
        0,
    );
    back.listed = false;
    back.capacity = 6;
    let mut full = door(
        "Thursday discussion",
        "thursday",
        "This month: \"The Left Hand of Darkness\", chapters 1–8.",
        Access::Members,
        8,
    );
    full.capacity = 8;
    SpaceView {
        name: "Book Club".to_owned(),
        slug: "book-club".to_owned(),
        description: "We read one novel a month and talk about it on the last Thursday. Newcomers welcome, spoilers not.".to_owned(),
        listed: true,
        member_count: 23,
        your_role: Some(Role::Owner),
        rooms: vec![
            full,
            lobby,
            door("Quiet reading", "quiet", "", Access::Members, 1),
            back,
        ],
        can_create_rooms: true,
        can_manage: true,
    }
}

pub fn room_view(stage: Stage) -> RoomView {
    RoomView {
        space_name: "Book Club".to_owned(),
        space_slug: "book-club".to_owned(),
        name: "Lobby".to_owned(),
        slug: "lobby".to_owned(),
        topic: "Say hello, find out what we're reading this month.".to_owned(),
        access: Access::Open,
        listed: true,
        capacity: 12,
        is_entrance: true,
        inside: vec![
            "Mina Haddad".to_owned(),
            "Tomás Rivera".to_owned(),
            "Grace".to_owned(),
        ],
        stage,
        can_edit: true,
    }
}

pub fn join_panel() -> JoinPanel {
    JoinPanel {
        signal_url: format!(
            "wss://commons.example.org{}",
            routes::room_signal("book-club", "lobby")
        ),
        token_url: routes::room_token("book-club", "lobby"),
        guest_name: String::new(),
        visiting: None,
        elsewhere_url: Some(routes::room_elsewhere("book-club", "lobby")),
    }
}

pub fn members() -> MembersView {
    let row = |name: &str, handle: &str, role: Role, is_you: bool| MemberRow {
        display_name: name.to_owned(),
        handle: handle.to_owned(),
        role,
        is_you,
        can_remove: !is_you,
    };
    MembersView {
        space_name: "Book Club".to_owned(),
        space_slug: "book-club".to_owned(),
        members: vec![
            row("Ada Okafor", "ada", Role::Owner, true),
            row("Mina Haddad", "mina", Role::Owner, false),
            row(
                "Tomás Rivera",
                "tomas@social.example.net",
                Role::Member,
                false,
            ),
            row("Grace", "grace_h", Role::Member, false),
        ],
        follow_requests: vec![crate::view::FollowRequestRow {
            actor: "https://social.example.net/users/rae".to_owned(),
            host: "social.example.net".to_owned(),
            requested: "3 March 2026".to_owned(),
            approve_url: crate::routes::follow_request(
                "book-club",
                "approve",
                "https://social.example.net/users/rae",
            ),
            reject_url: crate::routes::follow_request(
                "book-club",
                "reject",
                "https://social.example.net/users/rae",
            ),
        }],
        invitations: vec![
            InvitationRow {
                id: "41".to_owned(),
                email: "sam.lee@example.com".to_owned(),
                role: Role::Member,
                expires: "in 13 days".to_owned(),
            },
            InvitationRow {
                id: "42".to_owned(),
                email: "priya@example.net".to_owned(),
                role: Role::Owner,
                expires: "tomorrow".to_owned(),
            },
        ],
        can_manage: true,
        can_leave: true,
        invite: InviteForm::default(),
        join_requests: vec![JoinRequestRow {
            display_name: "Noor".to_owned(),
            address: "@noor@far.example".to_owned(),
            room_name: "Members Circle".to_owned(),
            approve_url: routes::join_request_decision("book-club", 7, true),
            decline_url: routes::join_request_decision("book-club", 7, false),
        }],
    }
}

pub fn invitation(state: InvitationState) -> InvitationView {
    InvitationView {
        token: "q2X9pLmv7Rk".to_owned(),
        inviter: "Mina Haddad".to_owned(),
        space_name: "Book Club".to_owned(),
        space_url: routes::space("book-club"),
        role: Role::Member,
        state,
    }
}

pub fn room_form_locked_with_errors() -> RoomForm {
    RoomForm {
        editing: Some("back-room".to_owned()),
        name: "Back room".to_owned(),
        slug: "Back Room".to_owned(),
        topic: "Organisers' planning corner.".to_owned(),
        access: Access::Locked,
        access_code: String::new(),
        code_is_set: false,
        listed: false,
        capacity: "0".to_owned(),
        errors: FormErrors::new()
            .with(
                "slug",
                "Use lowercase letters, digits and dashes, like back-room.",
            )
            .with("access_code", "Locked rooms need an access code.")
            .with("capacity", "Capacity must be between 1 and 100."),
        ..RoomForm::new_room("Book Club", "book-club")
    }
}

pub fn tokens() -> TokensView {
    TokensView {
        tokens: vec![
            TokenRow {
                id: "3".to_owned(),
                name: "Calendar sync".to_owned(),
                created: "2 March 2026".to_owned(),
                last_used: Some("5 minutes ago".to_owned()),
            },
            TokenRow {
                id: "7".to_owned(),
                name: "backup script".to_owned(),
                created: "today".to_owned(),
                last_used: None,
            },
        ],
        new_token: Some(NewToken {
            name: "backup script".to_owned(),
            secret: "cvn_pat_7f3K9qLm2VxR8tYw4ZbN6hJd1sPc5gAe".to_owned(),
        }),
        form: TokenForm::default(),
    }
}

/// A job queue with a failing SMTP server and two dead jobs, one of them retryable.
pub fn queue() -> crate::queue_view::QueueView {
    use crate::queue_view::{QueueDeadRow, QueueDestinationRow, QueueKindRow, QueueView};
    QueueView {
        kinds: vec![QueueKindRow {
            kind: "mail".to_owned(),
            queued: 112,
            running: 1,
            retrying: 3,
            done: 1480,
            dead: 2,
        }],
        destinations: vec![QueueDestinationRow {
            name: "smtps://mail.example.org:465".to_owned(),
            state: "failing".to_owned(),
            pending: 116,
            consecutive_failures: 4,
            last_error: Some(
                "SMTP delivery: transient error (421): too many connections".to_owned(),
            ),
            last_failure: Some("28 Nov 2026, 16:04:05 UTC".to_owned()),
            next_try: Some("28 Nov 2026, 16:05:05 UTC".to_owned()),
        }],
        dead: vec![
            QueueDeadRow {
                id: 42,
                kind: "mail".to_owned(),
                tag: "invitation".to_owned(),
                destination: "smtps://mail.example.org:465".to_owned(),
                attempts: 1,
                error: "SMTP refused it: permanent error (550): no such mailbox".to_owned(),
                when: "28 Nov 2026, 15:58:12 UTC".to_owned(),
                retry_url: Some(routes::admin_queue_retry(42)),
            },
            QueueDeadRow {
                id: 17,
                kind: "mail".to_owned(),
                tag: "election:3:ballot".to_owned(),
                destination: "smtps://mail.example.org:465".to_owned(),
                attempts: 0,
                error: "voting closed before it was sent".to_owned(),
                when: "27 Nov 2026, 18:00:00 UTC".to_owned(),
                retry_url: None,
            },
        ],
    }
}

/// The Network page: two Spaces followed elsewhere (one accepted with Rooms, one waiting) and
/// a partner with its public Spaces.
pub fn network() -> crate::network_view::NetworkView {
    use crate::network_view::{
        NetworkView, PartnerCard, PartnerSpace, RemoteRoomRow, RemoteSpaceCard,
    };
    NetworkView {
        follow: Default::default(),
        spaces: vec![
            RemoteSpaceCard {
                name: "Garden Society".to_owned(),
                handle: "@garden@social.example.net".to_owned(),
                summary: "We grow seeds & friends.".to_owned(),
                url: "https://social.example.net/spaces/garden".to_owned(),
                state: "accepted".to_owned(),
                unfollow_url: routes::network_unfollow("https://social.example.net/spaces/garden"),
                rooms: vec![RemoteRoomRow {
                    name: "Potting Shed".to_owned(),
                    url: "https://social.example.net/spaces/garden/rooms/shed".to_owned(),
                    access: "open".to_owned(),
                    capacity: 12,
                    head_count: 3,
                }],
            },
            RemoteSpaceCard {
                name: "Quiet Corner".to_owned(),
                handle: "@quiet@town.example".to_owned(),
                summary: String::new(),
                url: "https://town.example/spaces/quiet".to_owned(),
                state: "pending".to_owned(),
                unfollow_url: routes::network_unfollow("https://town.example/spaces/quiet"),
                rooms: Vec::new(),
            },
        ],
        partners: vec![PartnerCard {
            domain: "social.example.net".to_owned(),
            url: "https://social.example.net/".to_owned(),
            software: Some("convene 0.1.0".to_owned()),
            spaces: vec![PartnerSpace {
                name: "Book Club".to_owned(),
                url: "https://social.example.net/spaces/book-club".to_owned(),
            }],
        }],
    }
}

/// The operators' federation page: allow-list with a reachable partner and a blocked instance.
pub fn federation_admin() -> crate::network_view::FederationAdminView {
    use crate::network_view::{FederationAdminView, PartnerRow};
    FederationAdminView {
        mode: "allow-list".to_owned(),
        partners: vec![PartnerRow {
            domain: "social.example.net".to_owned(),
            software: Some("convene".to_owned()),
            version: Some("0.1.0".to_owned()),
            reachable: Some(true),
            check_note: None,
            checked: Some("28 Nov 2026, 16:04 UTC".to_owned()),
            queue_state: Some("ok".to_owned()),
            pending: 0,
            last_error: None,
            check_url: routes::admin_federation_action("check", "social.example.net"),
            remove_url: routes::admin_federation_action("remove", "social.example.net"),
        }],
        blocked: vec![PartnerRow {
            domain: "spam.example".to_owned(),
            reachable: Some(false),
            check_note: Some("spam.example could not be resolved".to_owned()),
            check_url: routes::admin_federation_action("check", "spam.example"),
            remove_url: routes::admin_federation_action("remove", "spam.example"),
            ..PartnerRow::default()
        }],
        domain: String::new(),
        errors: FormErrors::new(),
        blocked_passports: vec![(
            "@troll@social.example.net".to_owned(),
            routes::admin_unblock_passport("@troll@social.example.net"),
        )],
        passport_address: String::new(),
    }
}

/// Every page with sample data: `(file stem, document)`.
pub fn gallery() -> Vec<(&'static str, Markup)> {
    let guest = guest_context();
    let member = member_context();
    let empty_instance = PageContext {
        can_create_spaces: true,
        ..guest_context()
    };
    vec![
        ("admin-queue", pages::queue(&member, &queue())),
        (
            "admin-federation",
            pages::federation_admin(&member, &federation_admin()),
        ),
        ("network", pages::network(&member, &network())),
        (
            "network-errors",
            pages::network(
                &member,
                &crate::network_view::NetworkView {
                    follow: crate::network_view::FollowForm {
                        handle: "@nobody@social.example.net".to_owned(),
                        errors: FormErrors::new().with(
                            "handle",
                            "social.example.net does not know @nobody@social.example.net.",
                        ),
                    },
                    ..crate::network_view::NetworkView::default()
                },
            ),
        ),
        (
            "admin-queue-empty",
            pages::queue(&member, &crate::queue_view::QueueView::default()),
        ),
        ("landing", pages::landing(&guest, &landing())),
        (
            "landing-signed-in",
            pages::landing(
                &with_flash(member.clone(), Flash::success("Welcome back, Ada.")),
                &landing(),
            ),
        ),
        (
            "landing-empty",
            pages::landing(&empty_instance, &LandingView::default()),
        ),
        ("signup", pages::signup(&guest, &SignupForm::default())),
        (
            "signup-errors",
            pages::signup(
                &guest,
                &SignupForm {
                    email: "ada@example".to_owned(),
                    handle: "Ada!".to_owned(),
                    display_name: "Ada Okafor".to_owned(),
                    next: String::new(),
                    errors: FormErrors::new()
                        .with("email", "Enter an email address like name@example.org.")
                        .with("handle", "Use lowercase letters, digits and underscores."),
                },
            ),
        ),
        ("signin", pages::signin(&guest, &SigninForm::default())),
        (
            "verify",
            pages::verify(
                &with_flash(guest.clone(), Flash::info("We sent you a code.")),
                &VerifyForm {
                    email: "ada@example.org".to_owned(),
                    code: String::new(),
                    resend_url: routes::signin_with_email("ada@example.org"),
                    next: routes::invitation("q2X9pLmv7Rk"),
                    errors: FormErrors::new(),
                },
            ),
        ),
        (
            "verify-error",
            pages::verify(
                &guest,
                &VerifyForm {
                    email: "ada@example.org".to_owned(),
                    code: "12345".to_owned(),
                    resend_url: routes::signin_with_email("ada@example.org"),
                    next: String::new(),
                    errors: FormErrors::new()
                        .with("code", "That code is not right, or it has expired."),
                },
            ),
        ),
        (
            "account",
            pages::account(
                &member,
                &AccountForm {
                    handle: "ada".to_owned(),
                    email: "ada@example.org".to_owned(),
                    display_name: "Ada Okafor".to_owned(),
                    errors: FormErrors::new(),
                },
            ),
        ),
        ("tokens", pages::tokens(&member, &tokens())),
        (
            "tokens-empty",
            pages::tokens(&member, &TokensView::default()),
        ),
        (
            "space-new",
            pages::space_new(
                &member,
                &SpaceForm {
                    name: "Book Club".to_owned(),
                    slug: "book-club".to_owned(),
                    errors: FormErrors::new()
                        .with("slug", "That short name is taken. Try another."),
                    ..SpaceForm::default()
                },
            ),
        ),
        (
            "space",
            pages::space(
                &with_flash(member.clone(), Flash::success("Room created.")),
                &space(),
            ),
        ),
        (
            "space-visitor",
            pages::space(
                &guest,
                &SpaceView {
                    your_role: None,
                    can_create_rooms: false,
                    can_manage: false,
                    rooms: space().rooms.into_iter().filter(|r| r.listed).collect(),
                    ..space()
                },
            ),
        ),
        (
            "space-empty",
            pages::space(
                &member,
                &SpaceView {
                    rooms: vec![],
                    listed: false,
                    ..space()
                },
            ),
        ),
        (
            "space-edit",
            pages::space_edit(
                &member,
                &SpaceEditForm {
                    space_slug: "book-club".to_owned(),
                    name: "Book Club".to_owned(),
                    description: space().description,
                    listed: true,
                    entrance_room: Some("lobby".to_owned()),
                    rooms: space()
                        .rooms
                        .iter()
                        .map(|r| RoomOption {
                            slug: r.slug.clone(),
                            name: r.name.clone(),
                        })
                        .collect(),
                    errors: FormErrors::new(),
                },
            ),
        ),
        ("members", pages::members(&member, &members())),
        (
            "members-invite-error",
            pages::members(
                &member,
                &MembersView {
                    invite: InviteForm {
                        email: "sam.lee@example".to_owned(),
                        role: Role::Member,
                        errors: FormErrors::new()
                            .with("email", "Enter an email address like name@example.org."),
                    },
                    ..members()
                },
            ),
        ),
        (
            "invitation",
            pages::invitation(&member, &invitation(InvitationState::Pending)),
        ),
        (
            "invitation-signin",
            pages::invitation(
                &guest,
                &invitation(InvitationState::SignInRequired {
                    signin_url: routes::SIGNIN.to_owned(),
                    signup_url: routes::SIGNUP.to_owned(),
                }),
            ),
        ),
        (
            "invitation-expired",
            pages::invitation(&member, &invitation(InvitationState::Expired)),
        ),
        (
            "room-new",
            pages::room_new(&member, &RoomForm::new_room("Book Club", "book-club")),
        ),
        (
            "room-edit-errors",
            pages::room_edit(&member, &room_form_locked_with_errors()),
        ),
        (
            "room",
            pages::room(&member, &room_view(Stage::Join(join_panel()))),
        ),
        (
            "room-guest",
            pages::room(
                &guest,
                &RoomView {
                    can_edit: false,
                    ..room_view(Stage::Join(join_panel()))
                },
            ),
        ),
        (
            "room-locked",
            pages::room(
                &guest,
                &RoomView {
                    access: Access::Locked,
                    is_entrance: false,
                    can_edit: false,
                    inside: vec![],
                    ..room_view(Stage::Locked(UnlockForm {
                        error: Some("That code doesn't open this room.".to_owned()),
                        retry_after_secs: None,
                    }))
                },
            ),
        ),
        (
            "room-locked-wait",
            pages::room(
                &guest,
                &RoomView {
                    access: Access::Locked,
                    can_edit: false,
                    ..room_view(Stage::Locked(UnlockForm {
                        error: None,
                        retry_after_secs: Some(240),
                    }))
                },
            ),
        ),
        (
            "room-full",
            pages::room(
                &member,
                &RoomView {
                    inside: (1..=12).map(|i| format!("Reader {i}")).collect(),
                    access: Access::Members,
                    ..room_view(Stage::Full)
                },
            ),
        ),
        (
            "room-delete",
            pages::room_delete_confirm(
                &member,
                &RoomDeleteView {
                    space_name: "Book Club".to_owned(),
                    space_slug: "book-club".to_owned(),
                    room_name: "Lobby".to_owned(),
                    room_slug: "lobby".to_owned(),
                    inside: 3,
                    is_entrance: true,
                    errors: FormErrors::new(),
                },
            ),
        ),
        (
            "notice",
            pages::notice(
                &guest,
                &NoticeView {
                    icon: NoticeIcon::Mail,
                    title: "Check your email".to_owned(),
                    message:
                        "If ada@example.org has a Passport here, a sign-in code is on its way."
                            .to_owned(),
                    links: vec![
                        Link::new("Enter the code", routes::verify("ada@example.org")),
                        Link::new("Back to Spaces", routes::HOME),
                    ],
                },
            ),
        ),
        ("error-404", pages::error_status(&member, 404)),
        (
            "error-500-bare",
            pages::error_status(
                &PageContext::bare("Riverside Commons", "commons.example.org"),
                500,
            ),
        ),
    ]
}
