//! The `convene` command line: `serve` (the default), `migrate`, `admin …` and `tally`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::config::{ConfigArgs, Settings};
use crate::core::{self, Actor, Core};
use crate::db::Db;
use crate::domain::passports::{self, NewPassport};
use crate::domain::rooms::{self, Access, RoomFields};
use crate::domain::spaces::{self, SpaceFields};
use crate::domain::values::{AccessCode, DisplayName, Email, Handle, Slug};
use crate::jobs;
use crate::mail::Mailer;

#[derive(Debug, Parser)]
#[command(
    name = "convene",
    version,
    about = "A community's own video meeting place: Spaces, Rooms, Passports and its own governance."
)]
pub struct Cli {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the instance (the default when no command is given).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Administer the instance without the browser.
    Admin {
        /// Print one JSON object instead of a sentence.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Recount an election from a BLT file, offline.
    Tally {
        /// stv (Scottish STV), meek, irv, schulze, approval or plurality.
        #[arg(long, default_value = "stv")]
        method: String,
        /// Seats to fill [default: the count in the file].
        #[arg(long)]
        seats: Option<usize>,
        /// Seed of the lot that breaks remaining ties.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Passports.
    Passport {
        #[command(subcommand)]
        command: PassportCommand,
    },
    /// Spaces.
    Space {
        #[command(subcommand)]
        command: SpaceCommand,
    },
    /// Rooms.
    Room {
        #[command(subcommand)]
        command: RoomCommand,
    },
    /// List Passports, Spaces and Rooms.
    List,
    /// The job queue (mail, deliveries): counts by kind and state, destinations, dead jobs.
    Queue {
        #[command(subcommand)]
        command: Option<QueueCommand>,
    },
    /// Outgoing mail.
    Mail {
        #[command(subcommand)]
        command: MailCommand,
    },
    /// Which instances this one federates with.
    Federation {
        #[command(subcommand)]
        command: FederationCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum FederationCommand {
    /// Set the mode: open (everyone not blocked), allow-list (partners only) or block-list.
    Policy { mode: String },
    /// Make an instance a partner (lifts a block).
    Allow { domain: String },
    /// Block an instance: 403 on its requests, nothing sent to it, its follows removed.
    Block { domain: String },
    /// Take an instance off the partner and block lists.
    Unblock { domain: String },
    /// Block one Passport of another instance (`@ada@elsewhere`): no tickets, sessions or
    /// memberships here, and its media ends.
    BlockPassport { address: String },
    /// Lift the block on a Passport of another instance.
    UnblockPassport { address: String },
    /// Read a listed instance's NodeInfo (software, version, whether it answers) and keep it.
    Check { domain: String },
    /// Show the mode, the partners and the blocked instances.
    List,
    /// List names held by both a Passport and a Space (one `@name@domain` must name one
    /// actor); with --resolve, rename the later of each pair to the name with a number.
    Clashes {
        #[arg(long)]
        resolve: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Give a dead job a fresh set of attempts.
    Retry {
        /// The job's id, as `convene admin queue` lists it.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// Queue test messages, to check the SMTP settings: a running `convene serve` sends them.
    Test {
        #[arg(long)]
        to: String,
        /// How many messages to queue (at most 10000).
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum PassportCommand {
    /// Create a verified Passport.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        handle: String,
        /// Display name [default: the handle].
        #[arg(long)]
        name: Option<String>,
        /// Make it an operator.
        #[arg(long)]
        operator: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SpaceCommand {
    /// Create a Space owned by a Passport.
    Create {
        /// Handle of the owner.
        #[arg(long)]
        owner: String,
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long)]
        unlisted: bool,
    },
    /// Remove a member from a Space; their media ends in the Rooms they may no longer enter.
    RemoveMember {
        #[arg(long)]
        space: String,
        /// Handle of the member.
        #[arg(long)]
        handle: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RoomCommand {
    /// Create a Room in a Space.
    Create {
        #[arg(long)]
        space: String,
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        topic: String,
        /// open, members or locked.
        #[arg(long, default_value = "open")]
        access: String,
        /// Access code of a locked Room.
        #[arg(long)]
        code: Option<String>,
        #[arg(long)]
        unlisted: bool,
        #[arg(long, default_value_t = rooms::DEFAULT_CAPACITY)]
        capacity: i64,
    },
    /// Change a Room's access (and name or capacity); whoever loses access leaves at once.
    Update {
        #[arg(long)]
        space: String,
        #[arg(long)]
        room: String,
        #[arg(long)]
        name: Option<String>,
        /// open, members or locked.
        #[arg(long)]
        access: Option<String>,
        /// New access code (locked Rooms).
        #[arg(long)]
        code: Option<String>,
        #[arg(long)]
        capacity: Option<i64>,
    },
    /// Delete a Room; its gathering ends.
    Delete {
        #[arg(long)]
        space: String,
        #[arg(long)]
        room: String,
    },
}

/// Turns a domain error into a one-line message for the terminal.
fn plain(err: crate::error::AppError) -> anyhow::Error {
    match err {
        crate::error::AppError::Invalid(errors) => anyhow::anyhow!(
            "{}",
            errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        crate::error::AppError::Internal(e) => e,
        other => anyhow::anyhow!("{}", other.message().1),
    }
}

fn arg<T>(what: &str, r: Result<T, crate::domain::values::Invalid>) -> anyhow::Result<T> {
    r.map_err(|e| anyhow::anyhow!("{what}: {}", e.0))
}

pub async fn admin(config: &ConfigArgs, json: bool, command: AdminCommand) -> anyhow::Result<()> {
    let settings = Settings::load(config)?;
    let db = Db::connect(&settings.database_url).await?;
    db.migrate().await?;
    let domain = settings.domain();
    // The command line acts through the same use cases as the pages, as the administrator.
    // It runs no SFU: the serving process's reconciler ends the media of whoever lost access.
    let queue = jobs::Queue::new(
        db.clone(),
        jobs::QueueConfig {
            lease: settings.queue_lease,
            ..jobs::QueueConfig::default()
        },
    );
    let core = Core {
        mailer: Mailer::new(&settings, queue.clone())?,
        queue,
        db: db.clone(),
        settings: std::sync::Arc::new(settings.clone()),
        sfu: None,
        pages: std::sync::Arc::default(),
        node: std::sync::Arc::new(core::gathering::Node::new(
            &settings.node_url,
            settings.gathering_lease_seconds,
        )),
        key_making: std::sync::Arc::default(),
        signing_keys: std::sync::Arc::default(),
    };
    match command {
        AdminCommand::Passport {
            command:
                PassportCommand::Create {
                    email,
                    handle,
                    name,
                    operator,
                },
        } => {
            let handle = arg("--handle", Handle::parse(&handle))?;
            let name = arg(
                "--name",
                DisplayName::parse(name.as_deref().unwrap_or(handle.as_str())),
            )?;
            let email = arg("--email", Email::parse(&email))?;
            let p = passports::create(
                &db,
                NewPassport {
                    email,
                    handle,
                    display_name: name,
                    operator,
                },
            )
            .await
            .map_err(plain)?;
            let address = p.address(&domain);
            if json {
                println!(
                    "{}",
                    json!({"passport": {"id": p.id, "handle": p.handle, "address": address, "display_name": p.display_name, "is_operator": p.is_operator}})
                );
            } else {
                println!(
                    "Created Passport {address}{}",
                    if p.is_operator { " (operator)" } else { "" }
                );
            }
        }
        AdminCommand::Space {
            command:
                SpaceCommand::Create {
                    owner,
                    slug,
                    name,
                    description,
                    unlisted,
                },
        } => {
            let owner = arg("--owner", Handle::parse(&owner))?;
            let owner = passports::by_handle(&db, &owner)
                .await
                .map_err(plain)?
                .with_context(|| format!("no Passport @{owner}"))?;
            let slug = arg("--slug", Slug::parse(&slug))?;
            let fields = SpaceFields {
                name: arg("--name", DisplayName::parse(&name))?,
                description: arg(
                    "--description",
                    crate::domain::values::parse_text(&description, 2000),
                )?,
                listed: !unlisted,
            };
            let space = core::spaces::create(&core, Actor::Admin, &owner, &slug, &fields)
                .await
                .map_err(plain)?;
            let url = settings.url(&convene_web::routes::space(space.slug.as_str()));
            if json {
                println!(
                    "{}",
                    json!({"space": {"id": space.id, "slug": space.slug, "name": space.name, "url": url}})
                );
            } else {
                println!("Created Space {} at {url}", space.name);
            }
        }
        AdminCommand::Room {
            command:
                RoomCommand::Create {
                    space,
                    slug,
                    name,
                    topic,
                    access,
                    code,
                    unlisted,
                    capacity,
                },
        } => {
            let space = spaces::by_slug(&db, &space)
                .await
                .map_err(|_| anyhow::anyhow!("no Space {space:?}"))?;
            let slug = arg("--slug", Slug::parse(&slug))?;
            let access = Access::parse(&access).map_err(plain)?;
            let access_code = code
                .map(|c| arg("--code", AccessCode::parse(&c)))
                .transpose()?;
            if access != Access::Locked && access_code.is_some() {
                bail!("--code is only for --access locked");
            }
            let fields = RoomFields {
                name: arg("--name", DisplayName::parse(&name))?,
                topic: arg("--topic", crate::domain::values::parse_text(&topic, 300))?,
                access,
                access_code,
                listed: !unlisted,
                capacity,
            };
            let room = core::rooms::create(&core, Actor::Admin, &space, &slug, &fields)
                .await
                .map_err(plain)?;
            let url = settings.url(&convene_web::routes::room(
                space.slug.as_str(),
                room.slug.as_str(),
            ));
            if json {
                println!(
                    "{}",
                    json!({"room": {"id": room.id, "space": space.slug, "slug": room.slug, "name": room.name, "access": room.access, "listed": room.listed, "capacity": room.capacity, "url": url}})
                );
            } else {
                println!(
                    "Created Room {} ({}) at {url}",
                    room.name,
                    room.access.as_str()
                );
            }
        }
        AdminCommand::Space {
            command: SpaceCommand::RemoveMember { space, handle },
        } => {
            let space = spaces::by_slug(&db, &space)
                .await
                .map_err(|_| anyhow::anyhow!("no Space {space:?}"))?;
            let handle = arg("--handle", Handle::parse(&handle))?;
            let target = passports::by_handle(&db, &handle)
                .await
                .map_err(plain)?
                .with_context(|| format!("no Passport @{handle}"))?;
            core::spaces::remove_member(&core, Actor::Admin, &space, &target)
                .await
                .map_err(plain)?;
            if json {
                println!(
                    "{}",
                    json!({"removed": {"space": space.slug, "handle": target.handle}})
                );
            } else {
                println!("@{} is no longer a member of {}", target.handle, space.name);
            }
        }
        AdminCommand::Room {
            command:
                RoomCommand::Update {
                    space,
                    room,
                    name,
                    access,
                    code,
                    capacity,
                },
        } => {
            let space = spaces::by_slug(&db, &space)
                .await
                .map_err(|_| anyhow::anyhow!("no Space {space:?}"))?;
            let room = rooms::by_slug(&db, &space, &room)
                .await
                .map_err(|_| anyhow::anyhow!("no Room {room:?} in {}", space.slug))?;
            let access = match access {
                Some(a) => Access::parse(&a).map_err(plain)?,
                None => room.access,
            };
            let access_code = match code {
                Some(c) => Some(arg("--code", AccessCode::parse(&c))?),
                None => room.access_code.clone(),
            };
            let fields = RoomFields {
                name: match name {
                    Some(n) => arg("--name", DisplayName::parse(&n))?,
                    None => room.name.clone(),
                },
                topic: room.topic.clone(),
                access,
                access_code,
                listed: room.listed,
                capacity: capacity.unwrap_or(room.capacity),
            };
            core::rooms::update(&core, Actor::Admin, &space, &room, &room.slug, &fields)
                .await
                .map_err(plain)?;
            if json {
                println!(
                    "{}",
                    json!({"room": {"id": room.id, "space": space.slug, "slug": room.slug, "access": fields.access, "capacity": fields.capacity}})
                );
            } else {
                println!("Updated Room {} ({})", fields.name, fields.access.as_str());
            }
        }
        AdminCommand::Room {
            command: RoomCommand::Delete { space, room },
        } => {
            let space = spaces::by_slug(&db, &space)
                .await
                .map_err(|_| anyhow::anyhow!("no Space {space:?}"))?;
            let room = rooms::by_slug(&db, &space, &room)
                .await
                .map_err(|_| anyhow::anyhow!("no Room {room:?} in {}", space.slug))?;
            core::rooms::delete(&core, Actor::Admin, &space, &room)
                .await
                .map_err(plain)?;
            if json {
                println!(
                    "{}",
                    json!({"deleted": {"space": space.slug, "slug": room.slug}})
                );
            } else {
                println!("Deleted Room {}", room.name);
            }
        }
        AdminCommand::Federation { command } => {
            federation_command(&core, json, command).await?;
        }
        AdminCommand::Queue { command: None } => {
            let status = jobs::status::status(&db).await.map_err(plain)?;
            if json {
                println!("{}", serde_json::to_string(&status)?);
            } else {
                print!("{}", queue_text(&status));
            }
        }
        AdminCommand::Queue {
            command: Some(QueueCommand::Retry { id }),
        } => {
            if !jobs::status::retry(&db, jobs::JobId(id))
                .await
                .map_err(plain)?
            {
                bail!("job {id} is not a dead job with something left to send");
            }
            if json {
                println!("{}", json!({"retried": id}));
            } else {
                println!("Job {id} will be tried again.");
            }
        }
        AdminCommand::Mail {
            command: MailCommand::Test { to, count },
        } => {
            let to = arg("--to", Email::parse(&to))?;
            if !(1..=10_000).contains(&count) {
                bail!("--count must be between 1 and 10000");
            }
            let mailer = &core.mailer;
            let mut tx = db.begin_write().await?;
            for n in 1..=count {
                let body = format!(
                    "This is test message {n} of {count} from {}, queued by `convene admin mail test`.\n\n\
                     If it arrived, {} can send mail.\n",
                    settings.instance_name, settings.instance_name
                );
                mailer
                    .enqueue_in(
                        &mut tx,
                        crate::mail::Email {
                            to: to.as_str(),
                            subject: &format!("Test message {n} of {count}"),
                            body: &body,
                            kind: "test",
                        },
                    )
                    .await
                    .map_err(plain)?;
            }
            tx.commit().await?;
            if json {
                println!(
                    "{}",
                    json!({"queued": count, "to": to.as_str(), "destination": mailer.destination()})
                );
            } else {
                println!(
                    "Queued {count} test message(s) to {to} for {}; a running `convene serve` sends them.",
                    mailer.destination()
                );
            }
        }
        AdminCommand::List => {
            let people = passports::list_local(&db).await.map_err(plain)?;
            let all_spaces = spaces::all(&db).await.map_err(plain)?;
            let mut space_list = Vec::new();
            for space in &all_spaces {
                let room_list = rooms::visible(&db, space, true).await.map_err(plain)?;
                space_list.push((space, room_list));
            }
            if json {
                println!(
                    "{}",
                    json!({
                        "passports": people.iter().map(|p| json!({"handle": p.handle, "address": p.address(&domain), "display_name": p.display_name, "is_operator": p.is_operator})).collect::<Vec<_>>(),
                        "spaces": space_list.iter().map(|(s, rs)| json!({
                            "slug": s.slug, "name": s.name, "listed": s.listed,
                            "url": settings.url(&convene_web::routes::space(s.slug.as_str())),
                            "rooms": rs.iter().map(|r| json!({"slug": r.slug, "name": r.name, "access": r.access, "listed": r.listed, "capacity": r.capacity,
                                "url": settings.url(&convene_web::routes::room(s.slug.as_str(), r.slug.as_str()))})).collect::<Vec<_>>(),
                        })).collect::<Vec<_>>(),
                    })
                );
            } else {
                println!("Passports ({}):", people.len());
                for p in &people {
                    println!(
                        "  {} {}{}",
                        p.address(&domain),
                        p.display_name,
                        if p.is_operator { " [operator]" } else { "" }
                    );
                }
                println!("Spaces ({}):", space_list.len());
                for (s, rs) in &space_list {
                    println!(
                        "  /spaces/{} {}{}",
                        s.slug,
                        s.name,
                        if s.listed { "" } else { " [unlisted]" }
                    );
                    for r in rs {
                        println!(
                            "    /{} {} [{}{}] capacity {}",
                            r.slug,
                            r.name,
                            r.access.as_str(),
                            if r.listed { "" } else { ", unlisted" },
                            r.capacity
                        );
                    }
                }
            }
        }
    }
    db.close().await;
    Ok(())
}

/// The queue's status as text for the terminal.
fn queue_text(status: &jobs::status::QueueStatus) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let when = |t: Option<i64>| {
        t.and_then(|t| chrono::DateTime::from_timestamp(t, 0))
            .map_or_else(
                || "-".to_string(),
                |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            )
    };
    let _ = writeln!(out, "Jobs by kind:");
    if status.kinds.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for k in &status.kinds {
        let _ = writeln!(
            out,
            "  {:<12} queued {}  running {}  retrying {}  done {}  dead {}",
            k.kind, k.queued, k.running, k.retrying, k.done, k.dead
        );
    }
    let _ = writeln!(out, "Destinations:");
    if status.destinations.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for d in &status.destinations {
        let _ = write!(
            out,
            "  {}  {}  {} pending",
            d.destination,
            d.state.as_str(),
            d.pending
        );
        if d.consecutive_failures > 0 {
            let _ = write!(
                out,
                ", {} failure(s) in a row, last at {}: {}",
                d.consecutive_failures,
                when(d.last_failure_at),
                d.last_error.as_deref().unwrap_or("")
            );
        }
        if d.next_probe_at.is_some() {
            let _ = write!(out, ", next try {}", when(d.next_probe_at));
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "Dead jobs ({}):", status.dead.len());
    for j in &status.dead {
        let _ = writeln!(
            out,
            "  #{} {} {} to {}, {} attempt(s), {}: {}{}",
            j.id.0,
            j.kind,
            j.tag,
            j.destination,
            j.attempts,
            when(j.finished_at),
            j.last_error.as_deref().unwrap_or(""),
            if j.retryable {
                ""
            } else {
                " [nothing left to send]"
            }
        );
    }
    out
}

pub fn tally(
    method: &str,
    seats: Option<usize>,
    seed: u64,
    json: bool,
    file: &std::path::Path,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let outcome = crate::governance::tally::tally_text(&text, method, seats, seed)
        .with_context(|| format!("counting {}", file.display()))?;
    let report = if json {
        serde_json::to_string_pretty(&outcome)? + "\n"
    } else {
        outcome.to_text()
    };
    // A closed pipe (`convene tally ... | head`) is the reader's choice, not an error.
    match std::io::Write::write_all(&mut std::io::stdout().lock(), report.as_bytes()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(()),
    }
}

/// `convene admin federation …`.
async fn federation_command(
    core: &Core,
    json: bool,
    command: FederationCommand,
) -> anyhow::Result<()> {
    use crate::core::{handles, partners, passport_blocks};
    let (sentence, value) = match command {
        FederationCommand::Clashes { resolve } => {
            let clashes = handles::clashes(&core.db).await.map_err(plain)?;
            let mut lines: Vec<String> = clashes
                .iter()
                .map(|c| {
                    format!(
                        "@{}: Passport {} and Space {}; the later is the {}",
                        c.name,
                        c.passport_id,
                        c.space_id,
                        match c.later() {
                            handles::Holder::Passport => "Passport",
                            handles::Holder::Space => "Space",
                        }
                    )
                })
                .collect();
            let renamed = if resolve {
                handles::resolve(core).await.map_err(plain)?
            } else {
                Vec::new()
            };
            lines.extend(renamed.iter().map(|r| {
                format!(
                    "renamed {} {}: @{} is now @{}",
                    match r.holder {
                        handles::Holder::Passport => "Passport",
                        handles::Holder::Space => "Space",
                    },
                    r.id,
                    r.from,
                    r.to
                )
            }));
            if clashes.is_empty() {
                lines.push("no clashes: every name is one Passport's or one Space's".into());
            } else if !resolve {
                lines.push("run again with --resolve to rename the later of each pair".into());
            }
            (
                lines.join("\n"),
                json!({"clashes": clashes, "renamed": renamed}),
            )
        }
        FederationCommand::Policy { mode } => {
            let mode = partners::parse_mode(&mode).map_err(plain)?;
            partners::set_mode(core, mode).await.map_err(plain)?;
            let name = partners::mode_name(mode);
            (
                format!("Federation policy: {name}"),
                json!({"policy": name}),
            )
        }
        FederationCommand::Allow { domain } => {
            let domain = partners::allow(core, &domain).await.map_err(plain)?;
            (format!("{domain} is a partner"), json!({"partner": domain}))
        }
        FederationCommand::Block { domain } => {
            let blocked = partners::block(core, &domain).await.map_err(plain)?;
            (
                format!(
                    "{} is blocked; {} follow(s), {} membership(s) and {} followed Space(s) removed",
                    blocked.domain,
                    blocked.follows_removed,
                    blocked.memberships_removed,
                    blocked.spaces_forgotten
                ),
                json!({"blocked": blocked}),
            )
        }
        FederationCommand::Unblock { domain } => {
            let was_listed = partners::unblock(core, &domain).await.map_err(plain)?;
            (
                if was_listed {
                    format!("{domain} is off the lists")
                } else {
                    format!("{domain} was on neither list")
                },
                json!({"unlisted": domain, "was_listed": was_listed}),
            )
        }
        FederationCommand::BlockPassport { address } => {
            let blocked = passport_blocks::block(core, &address)
                .await
                .map_err(plain)?;
            (
                format!(
                    "{} is blocked; {} membership(s) removed",
                    blocked.address, blocked.memberships_removed
                ),
                json!({"blocked_passport": blocked}),
            )
        }
        FederationCommand::UnblockPassport { address } => {
            let was_blocked = passport_blocks::unblock(core, &address)
                .await
                .map_err(plain)?;
            (
                if was_blocked {
                    format!("{address} is no longer blocked")
                } else {
                    format!("{address} was not blocked")
                },
                json!({"unblocked_passport": address, "was_blocked": was_blocked}),
            )
        }
        FederationCommand::Check { domain } => {
            let client = crate::activitypub::fetch_client(&core.settings)?;
            let partner = partners::check(core, &client, &domain)
                .await
                .map_err(plain)?;
            (
                match (&partner.software, &partner.version, partner.reachable) {
                    (Some(software), Some(version), Some(true)) => {
                        format!("{} answers: {software} {version}", partner.domain)
                    }
                    _ => format!(
                        "{} did not answer: {}",
                        partner.domain,
                        partner.check_note.as_deref().unwrap_or("no NodeInfo")
                    ),
                },
                json!({"checked": partner}),
            )
        }
        FederationCommand::List => {
            let policy = partners::policy(&core.db).await.map_err(plain)?;
            let partners_list: Vec<&str> = policy.partners().collect();
            let blocked: Vec<&str> = policy.blocked().collect();
            let passports = passport_blocks::list(&core.db).await.map_err(plain)?;
            let listed = |items: &[&str]| {
                if items.is_empty() {
                    "none".to_string()
                } else {
                    items.join(", ")
                }
            };
            let passport_refs: Vec<&str> = passports.iter().map(String::as_str).collect();
            (
                format!(
                    "policy: {}\npartners: {}\nblocked: {}\nblocked passports: {}",
                    partners::mode_name(policy.mode),
                    listed(&partners_list),
                    listed(&blocked),
                    listed(&passport_refs),
                ),
                json!({"policy": partners::mode_name(policy.mode), "partners": partners_list, "blocked": blocked, "blocked_passports": passports}),
            )
        }
    };
    if json {
        println!("{value}");
    } else {
        println!("{sentence}");
    }
    Ok(())
}
