//! The job queue for operators: what waits, where it goes, and what was given up.

use maud::{Markup, html};

use crate::components::{ButtonKind, Icon, Tone, badge, empty_state, page_header, post_button};
use crate::layout::page;
use crate::queue_view::{GatheringRow, QueueView};
use crate::view::PageContext;

fn state_badge(state: &str) -> Markup {
    let tone = match state {
        "ok" => Tone::Success,
        "failing" => Tone::Warning,
        _ => Tone::Accent,
    };
    badge(state, tone)
}

/// `GET /admin/queue`: counts by kind and state, destinations, dead jobs with a retry button.
pub fn queue(ctx: &PageContext, view: &QueueView) -> Markup {
    let body = html! {
        (page_header(&[], "Job queue",
            Some(html! { p { "Mail and deliveries waiting to go out, where they go, and what was given up. "
                "The same is printed by " code { "convene admin queue" } ". "
                a href=(crate::routes::ADMIN_GATHERINGS) { "Live gatherings" } " shows where each Room's media runs." } }),
            None))
        div.stack {
            section.card aria-labelledby="queue-kinds-title" {
                h2 #queue-kinds-title { "Jobs by kind" }
                @if view.kinds.is_empty() {
                    p.muted { "Nothing has been queued yet." }
                } @else {
                    div.gov-table-wrap {
                        table.gov-table #queue-kinds {
                            caption.visually-hidden { "Jobs by kind and state" }
                            thead { tr {
                                th scope="col" { "Kind" } th scope="col" { "Queued" } th scope="col" { "Running" }
                                th scope="col" { "Retrying" } th scope="col" { "Done" } th scope="col" { "Dead" }
                            } }
                            tbody {
                                @for k in &view.kinds {
                                    tr {
                                        th scope="row" { (k.kind) }
                                        td { (k.queued) } td { (k.running) } td { (k.retrying) }
                                        td { (k.done) } td { (k.dead) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section.card aria-labelledby="queue-destinations-title" {
                h2 #queue-destinations-title { "Destinations" }
                p.help { "After three failures in a row a destination is held: one job at a time is tried until it answers, then the rest go out." }
                @if view.destinations.is_empty() {
                    p.muted { "No destination has jobs waiting or has failed." }
                } @else {
                    div.gov-table-wrap {
                        table.gov-table #queue-destinations {
                            caption.visually-hidden { "Destinations and their health" }
                            thead { tr {
                                th scope="col" { "Destination" } th scope="col" { "State" } th scope="col" { "Waiting" }
                                th scope="col" { "Failures in a row" } th scope="col" { "Last error" } th scope="col" { "Next try" }
                            } }
                            tbody {
                                @for d in &view.destinations {
                                    tr {
                                        th scope="row" .break-anywhere { (d.name) }
                                        td { (state_badge(&d.state)) }
                                        td { (d.pending) }
                                        td { (d.consecutive_failures) }
                                        td .break-anywhere {
                                            @if let Some(e) = &d.last_error { (e) }
                                            @if let Some(at) = &d.last_failure { " " span.muted { "(" (at) ")" } }
                                        }
                                        td { @if let Some(t) = &d.next_try { (t) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section.card aria-labelledby="queue-dead-title" {
                h2 #queue-dead-title { "Dead jobs" }
                @if view.dead.is_empty() {
                    (empty_state(Icon::Check, "No dead jobs", "Every job was delivered or is still being tried.", None))
                } @else {
                    div.gov-table-wrap {
                        table.gov-table #queue-dead {
                            caption.visually-hidden { "Jobs given up, newest first" }
                            thead { tr {
                                th scope="col" { "Job" } th scope="col" { "About" } th scope="col" { "Destination" }
                                th scope="col" { "Attempts" } th scope="col" { "Given up" } th scope="col" { "Last error" }
                                th scope="col" { span.visually-hidden { "Actions" } }
                            } }
                            tbody {
                                @for j in &view.dead {
                                    tr {
                                        th scope="row" { "#" (j.id) " " (j.kind) }
                                        td .break-anywhere { (j.tag) }
                                        td .break-anywhere { (j.destination) }
                                        td { (j.attempts) }
                                        td { (j.when) }
                                        td .break-anywhere { (j.error) }
                                        td {
                                            @if let Some(url) = &j.retry_url {
                                                (post_button(url, &ctx.csrf, html! { "Retry" span.visually-hidden { " job " (j.id) } }, ButtonKind::Secondary))
                                            } @else {
                                                span.muted { "nothing left to send" }
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
    page(ctx, "Job queue", body)
}

/// `GET /admin/gatherings`: every live gathering by the process (media node) that holds it.
pub fn gatherings(ctx: &PageContext, rows: &[GatheringRow]) -> Markup {
    let nodes = {
        let mut nodes: Vec<(&str, usize)> = Vec::new();
        for row in rows {
            match nodes.iter_mut().find(|(n, _)| *n == row.node) {
                Some((_, count)) => *count += 1,
                None => nodes.push((&row.node, 1)),
            }
        }
        nodes
    };
    let body = html! {
        (page_header(&[], "Live gatherings",
            Some(html! { p { "Each Room's gathering runs on one process (media node); with several processes on one database, "
                "a join at another process is passed to the holder. A holder that stops gives its gatherings up when its claim runs out." } }),
            None))
        div.stack {
            section.card aria-labelledby="gathering-nodes-title" {
                h2 #gathering-nodes-title { "Gatherings per node" }
                @if nodes.is_empty() {
                    (empty_state(Icon::Check, "No live gatherings", "Nobody is in a Room right now.", None))
                } @else {
                    ul #gathering-nodes {
                        @for (node, count) in &nodes {
                            li { code .break-anywhere { (node) } ": " (count) @if *count == 1 { " gathering" } @else { " gatherings" } }
                        }
                    }
                }
            }
            @if !rows.is_empty() {
                section.card aria-labelledby="gatherings-title" {
                    h2 #gatherings-title { "Gatherings" }
                    div.gov-table-wrap {
                        table.gov-table #gatherings {
                            caption.visually-hidden { "Live gatherings by node" }
                            thead { tr {
                                th scope="col" { "Room" } th scope="col" { "Node" }
                                th scope="col" { "Inside" } th scope="col" { "Claim until" }
                            } }
                            tbody {
                                @for g in rows {
                                    tr {
                                        th scope="row" {
                                            a href=(crate::routes::room(&g.space_slug, &g.room_slug)) { (g.room_name) }
                                            " " span.muted { "in " (g.space_name) }
                                        }
                                        td .break-anywhere { (g.node) @if g.here { " " (badge("this process", Tone::Accent)) } }
                                        td { @if let Some(n) = g.seated { (n) } @else { span.muted { "held elsewhere" } } }
                                        td { (g.lease_until) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(ctx, "Live gatherings", body)
}
