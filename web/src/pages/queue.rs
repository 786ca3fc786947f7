//! The job queue for operators: what waits, where it goes, and what was given up.

use maud::{Markup, html};

use crate::components::{ButtonKind, Icon, Tone, badge, empty_state, page_header, post_button};
use crate::layout::page;
use crate::queue_view::QueueView;
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
                "The same is printed by " code { "convene admin queue" } "." } }),
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
