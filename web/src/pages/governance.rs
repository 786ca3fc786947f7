//! The governance pages: the Circle of Stewards with the Budget and Objectives, elections,
//! the ballot (which works without JavaScript: numbered selects, checkboxes or radios), the
//! receipt, the list of receipts, the result with every round, and motions.

use maud::{Markup, html};

use crate::components::{
    ButtonKind, Choice, Icon, TextField, Tone, badge, button, empty_state, icon, link_button,
    page_header, post_button, post_form, radio_group, select, text_field,
};
use crate::governance_view::{
    BallotKind, BallotView, ElectionForm, ElectionView, EventView, GovernanceView, MotionView,
    ReceiptView, ReceiptsView, ResultView, TieDecision,
};
use crate::layout::page;
use crate::routes::{
    CIRCLE_COUNTBACK, CIRCLE_SIZE, ELECTION_NEW, ELECTIONS, GOVERNANCE, GOVERNANCE_WORKERS,
    MOTIONS, SIGNIN,
};
use crate::view::{FormErrors, PageContext};

const CRUMB: (&str, &str) = ("Governance", GOVERNANCE);

fn phase_badge(phase: &str) -> Markup {
    let tone = match phase {
        "Voting open" | "Nominations open" => Tone::Success,
        "Closed" => Tone::Neutral,
        "Counting" => Tone::Warning,
        _ => Tone::Info,
    };
    badge(phase, tone)
}

/// `GET /governance`: the Circle, the Budget, the Objectives, elections, motions, Workers.
pub fn governance(ctx: &PageContext, view: &GovernanceView) -> Markup {
    let actions = view.can_run_elections.then(|| {
        link_button(
            ELECTION_NEW,
            "New election",
            ButtonKind::Primary,
            Some(Icon::Plus),
        )
    });
    let body = html! {
        (page_header(&[], "Governance",
            Some(html! { p { "This instance belongs to its people. The Circle of Stewards — as many Resident as Worker Representatives — decides the Budget and the Objectives by a majority of each side." } }),
            actions))
        div.stack.gov-stack {
            section.card aria-labelledby="circle-title" {
                h2 #circle-title { "Circle of Stewards" }
                p.muted { (view.seats_per_constituency) " Resident and " (view.seats_per_constituency) " Worker seats." }
                div.gov-circle {
                    @for side in ["Resident", "Worker"] {
                        div {
                            h3 { (side) " Representatives" }
                            ul.rows {
                                @for seat in view.seats.iter().filter(|s| s.constituency == side) {
                                    li.row {
                                        div.row-main {
                                            span.row-title {
                                                @match &seat.holder {
                                                    Some(p) => { (p.display_name) " " span.muted { "@" (p.handle) } }
                                                    None => { span.muted { "Vacant seat " (seat.number) } }
                                                }
                                            }
                                            @if let Some(term) = &seat.term { span.row-meta { (term) } }
                                        }
                                        @if let (Some(url), Some(p)) = (&seat.vacate_url, &seat.holder) {
                                            div.row-actions {
                                                (post_button(url, &ctx.csrf, html! { "Vacate" span.visually-hidden { " the seat of " (p.display_name) } }, ButtonKind::QuietDanger))
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if view.can_manage {
                    @if !view.countback.is_empty() {
                        div.actions {
                            @for (label, value) in &view.countback {
                                form.inline-form method="post" action=(CIRCLE_COUNTBACK) {
                                    (crate::components::csrf_input(&ctx.csrf))
                                    input type="hidden" name="constituency" value=(value);
                                    button.btn.btn-secondary.btn-small type="submit" { "Fill the " (label) " vacancy by countback" }
                                }
                            }
                        }
                    }
                    details.gov-details {
                        summary { "Change the size of the Circle" }
                        (post_form(CIRCLE_SIZE, &ctx.csrf, &view.size_form.errors, html! {
                            (text_field(&TextField::new("seats", "Seats per constituency")
                                .value(&view.size_form.seats).input_type("number").min("1").max("50").short()
                                .help("Both constituencies always get the same number. Shrinking removes vacant seats only.")
                                .error(view.size_form.errors.get("seats"))))
                            div.form-actions { (button("Resize", ButtonKind::Secondary)) }
                        }))
                    }
                }
            }
            section.card aria-labelledby="budget-title" {
                h2 #budget-title { "Budget" }
                dl.facts {
                    div { dt { "Infrastructure" } dd.gov-share { (view.budget.infrastructure) "%" } }
                    div { dt { "Operations" } dd.gov-share { (view.budget.operations) "%" } }
                    div { dt { "Patronage" } dd.gov-share { (view.budget.patronage) "%" } }
                    div { dt { "Reserve" } dd.gov-share { (view.budget.reserve) "%" } }
                }
                p.help { "Shares of the instance's revenue. The reserve is what is not allocated; it stays in the account until the Circle allocates it." }
            }
            section.card aria-labelledby="objectives-title" {
                h2 #objectives-title { "Objectives" }
                @if view.objectives.is_empty() {
                    p.muted { "The Circle has not set Objectives yet." }
                } @else {
                    ol.gov-objectives { @for o in &view.objectives { li { (o) } } }
                }
            }
            @if view.is_steward {
                section.card aria-labelledby="motion-new-title" {
                    h2 #motion-new-title { "Propose a motion" }
                    p.help { "A motion passes with a majority of the Resident seats and a majority of the Worker seats." }
                    (post_form(MOTIONS, &ctx.csrf, &view.motion_form.errors, html! {
                        input type="hidden" name="kind" value="budget";
                        fieldset.field.gov-shares {
                            legend { "New Budget (percent)" }
                            (text_field(&TextField::new("infrastructure", "Infrastructure").value(&view.motion_form.infrastructure).input_type("number").min("0").max("100").short().error(view.motion_form.errors.get("infrastructure"))))
                            (text_field(&TextField::new("operations", "Operations").value(&view.motion_form.operations).input_type("number").min("0").max("100").short().error(view.motion_form.errors.get("operations"))))
                            (text_field(&TextField::new("patronage", "Patronage").value(&view.motion_form.patronage).input_type("number").min("0").max("100").short().error(view.motion_form.errors.get("patronage"))))
                        }
                        div.form-actions { (button("Propose this Budget", ButtonKind::Secondary)) }
                    }))
                    (post_form(MOTIONS, &ctx.csrf, &FormErrors::new(), html! {
                        input type="hidden" name="kind" value="objectives";
                        (text_field(&TextField::new("objectives", "New Objectives").value(&view.motion_form.objectives).multiline()
                            .help("One objective per line; the list replaces the current one.")
                            .error(view.motion_form.errors.get("objectives"))))
                        div.form-actions { (button("Propose these Objectives", ButtonKind::Secondary)) }
                    }))
                }
            }
            section.card aria-labelledby="elections-title" {
                h2 #elections-title { "Elections" }
                @if view.elections.is_empty() {
                    (empty_state(Icon::People, "No elections yet", "Elections fill the Circle's seats.", None))
                } @else {
                    ul.rows {
                        @for e in &view.elections {
                            li.row {
                                div.row-main {
                                    span.row-title { a href=(e.url) { (e.title) } " " (phase_badge(&e.phase)) }
                                    span.row-meta { (e.constituency) " · " (e.seats) " seat(s) · " (e.method) " · " (e.when) }
                                    @if let Some(outcome) = &e.outcome { span.row-meta { (outcome) } }
                                }
                            }
                        }
                    }
                }
            }
            section.card aria-labelledby="motions-title" {
                h2 #motions-title { "Motions" }
                @if view.motions.is_empty() {
                    p.muted { "No motions yet." }
                } @else {
                    ul.rows {
                        @for m in &view.motions {
                            li.row {
                                div.row-main {
                                    span.row-title { a href=(m.url) { (m.title) } " " (badge(&m.status, if m.status == "Passed" { Tone::Success } else if m.status == "Open" { Tone::Info } else { Tone::Neutral })) }
                                    span.row-meta {
                                        "Proposed " (m.created)
                                        @if let Some(by) = &m.proposed_by { " by @" (by) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section.card aria-labelledby="workers-title" {
                h2 #workers-title { "Workers" }
                p.help { "Maintainers and Contributors form the Worker constituency. Every change is logged below." }
                @if view.workers.is_empty() {
                    p.muted { "Nobody is marked as a Worker yet." }
                } @else {
                    ul.rows {
                        @for w in &view.workers {
                            li.row { div.row-main { span.row-title { (w.person.display_name) " " span.muted { "@" (w.person.handle) } } span.row-meta { (w.role) } } }
                        }
                    }
                }
                @if view.can_manage {
                    (post_form(GOVERNANCE_WORKERS, &ctx.csrf, &view.role_form.errors, html! {
                        (text_field(&TextField::new("handle", "Handle").value(&view.role_form.handle).prefix("@").required().spellcheck_off().error(view.role_form.errors.get("handle"))))
                        (select("role", "Role", &[Choice::new("maintainer", "Maintainer"), Choice::new("contributor", "Contributor"), Choice::new("none", "No Worker role")], &view.role_form.role, None, view.role_form.errors.get("role")))
                        (text_field(&TextField::new("reason", "Reason").value(&view.role_form.reason).optional().maxlength(300).error(view.role_form.errors.get("reason"))))
                        div.form-actions { (button("Set role", ButtonKind::Secondary)) }
                    }))
                }
                h3 { "Audit log" }
                @if view.role_log.is_empty() {
                    p.muted { "No changes yet." }
                } @else {
                    div.gov-table-wrap {
                        table.gov-table {
                            caption.visually-hidden { "Changes of Worker roles, newest first" }
                            thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "Change" } th scope="col" { "By" } th scope="col" { "Reason" } } }
                            tbody {
                                @for r in &view.role_log {
                                    tr {
                                        td { (r.when) }
                                        td { (r.person.display_name) " @" (r.person.handle) }
                                        td { (r.change) }
                                        td { @if let Some(by) = &r.by { "@" (by) } }
                                        td { (r.reason) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(ctx, "Governance", body)
}

/// `GET /governance/elections/new`.
pub fn election_new(ctx: &PageContext, form: &ElectionForm) -> Markup {
    let e = &form.errors;
    let methods = [
        Choice::new("stv", "Scottish STV")
            .hint("Several seats, proportional; the Scottish council rules."),
        Choice::new("meek", "Meek STV")
            .hint("Several seats, proportional; transfers re-weighted each round."),
        Choice::new("irv", "Instant-runoff")
            .hint("One seat; a majority of the ballots still in play."),
        Choice::new("schulze", "Schulze")
            .hint("Ranked; the candidate preferred in head-to-head comparisons."),
        Choice::new("approval", "Approval").hint("Voters tick everyone they approve of."),
        Choice::new("plurality", "Plurality").hint("Voters choose one."),
    ];
    let fields = html! {
        (text_field(&TextField::new("title", "Title").value(&form.title).required().maxlength(120).error(e.get("title"))))
        (radio_group("constituency", "Constituency", &[
            Choice::new("resident", "Residents").hint("Passport Holders elect Resident Representatives."),
            Choice::new("worker", "Workers").hint("Maintainers and Contributors elect Worker Representatives."),
        ], &form.constituency, None, e.get("constituency")))
        (text_field(&TextField::new("seats", "Seats").value(&form.seats).input_type("number").min("1").short().required().error(e.get("seats"))))
        (radio_group("method", "Counting method", &methods, &form.method, None, e.get("method")))
        fieldset.field.gov-times {
            legend { "Times (UTC)" }
            (text_field(&TextField::new("nominations_open", "Nominations open").value(&form.nominations_open).input_type("datetime-local").required().error(e.get("nominations_open"))))
            (text_field(&TextField::new("nominations_close", "Nominations close").value(&form.nominations_close).input_type("datetime-local").required().error(e.get("nominations_close"))))
            (text_field(&TextField::new("voting_open", "Voting opens").value(&form.voting_open).input_type("datetime-local").required().error(e.get("voting_open"))))
            (text_field(&TextField::new("voting_close", "Voting closes").value(&form.voting_close).input_type("datetime-local").required().error(e.get("voting_close"))))
        }
        (text_field(&TextField::new("quorum", "Quorum (minimum turnout, %)").value(&form.quorum).input_type("number").min("0").max("100").short().optional()
            .help("0 for none. Below the quorum the result is published but nobody takes a seat.").error(e.get("quorum"))))
        (crate::components::checkbox("by_election", "By-election", form.by_election, Some("Fills vacancies only; seats whose term is over are renewed by a regular election."), None))
        div.form-actions { (button("Create election", ButtonKind::Primary)) }
    };
    let body = html! {
        (page_header(&[CRUMB], "New election", Some(html! { p { "The roll is frozen when voting opens; everyone on it then gets a ballot link by email." } }), None))
        div.stack { section.card { (post_form(ELECTIONS, &ctx.csrf, &form.errors, fields)) } }
    };
    page(ctx, "New election", body)
}

/// `GET /governance/elections/{id}`.
pub fn election(ctx: &PageContext, view: &ElectionView) -> Markup {
    let body = html! {
        (page_header(&[CRUMB], &view.title, Some(html! {
            p { (phase_badge(&view.phase)) " " (view.constituency) " constituency · " (view.seats) " seat(s) · " (view.method)
                @if view.by_election { " · by-election" } }
        }), None))
        div.stack.gov-stack {
            @if !view.elected.is_empty() || view.notes.is_some() || view.result_url.is_some() {
                section.card.callout.callout-success aria-labelledby="outcome-title" {
                    h2 #outcome-title { (icon(Icon::Check)) "Result" }
                    @if !view.elected.is_empty() { p { "Elected: " strong { (view.elected.join(", ")) } } }
                    @if let Some(notes) = &view.notes { p { (notes) } }
                    div.actions {
                        @if let Some(url) = &view.result_url { a.btn.btn-primary.btn-small href=(url) { "Every round of the count" } }
                        a.btn.btn-secondary.btn-small href=(view.receipts_url) { "Receipts" }
                        @if let Some(url) = &view.blt_url { a.btn.btn-quiet.btn-small href=(url) { "Ballots (BLT)" } }
                    }
                }
            }
            section.card aria-labelledby="timeline-title" {
                h2 #timeline-title { "Timeline" }
                dl.facts {
                    @for (what, when) in &view.timeline { div { dt { (what) } dd { (when) } } }
                    div { dt { "Quorum" } dd { @if view.quorum_percent == 0 { "none" } @else { (view.quorum_percent) "% turnout" } } }
                    @if let Some(seed) = &view.seed { div { dt { "Seed of the lot" } dd.break-anywhere { code.gov-seed { (seed) } } } }
                    @if let Some((voted, roll)) = view.turnout { div { dt { "Turnout" } dd { (voted) " of " (roll) " voted" } } }
                }
                @if view.seed.is_some() {
                    p.help { "The seed was drawn when voting opened, before any ballot was counted. Ties the rules cannot break are decided by a lot drawn from it, so anyone can redo the count." }
                }
            }
            section.card aria-labelledby="candidates-title" {
                h2 #candidates-title { "Candidates" }
                @if view.candidates.is_empty() {
                    p.muted { "No nominations yet." }
                } @else {
                    ul.rows.gov-candidates {
                        @for c in &view.candidates {
                            li.row {
                                div.row-main {
                                    span.row-title {
                                        @if let Some(n) = c.ballot_number { span.gov-number { (n) } " " }
                                        (c.person.display_name) " " span.muted { "@" (c.person.handle) } " "
                                        (badge(&c.status, if c.status == "Standing" { Tone::Success } else { Tone::Neutral }))
                                    }
                                    @if !c.statement.is_empty() { p.gov-statement { (c.statement) } }
                                    @if let Some(by) = &c.nominated_by { span.row-meta { "Nominated by @" (by) } }
                                    @if let Some(url) = &c.accept_url {
                                        (post_form(url, &ctx.csrf, &FormErrors::new(), html! {
                                            (text_field(&TextField::new("statement", "Your statement").value(&c.statement).multiline().maxlength(2000).optional()))
                                            div.form-actions { (button("Accept the nomination", ButtonKind::Primary)) }
                                        }))
                                    }
                                }
                                @if let Some(url) = &c.withdraw_url {
                                    div.row-actions { (post_button(url, &ctx.csrf, html! { "Withdraw" }, ButtonKind::QuietDanger)) }
                                }
                            }
                        }
                    }
                }
                @if let Some(url) = &view.nominate_url {
                    h3 { "Nominate" }
                    (post_form(url, &ctx.csrf, &view.nominate_form.errors, html! {
                        (text_field(&TextField::new("handle", "Who").value(&view.nominate_form.handle).prefix("@").optional().spellcheck_off()
                            .help("Leave empty to stand yourself. Someone you nominate accepts on this page.")
                            .error(view.nominate_form.errors.get("handle"))))
                        (text_field(&TextField::new("statement", "Statement").value(&view.nominate_form.statement).multiline().maxlength(2000).optional()
                            .help("Why this candidate; shown to every voter.").error(view.nominate_form.errors.get("statement"))))
                        div.form-actions { (button("Nominate", ButtonKind::Primary)) }
                    }))
                } @else if !view.signed_in && view.phase == "Nominations open" {
                    p { a href=(SIGNIN) { "Sign in" } " to nominate." }
                }
            }
            @if view.is_admin {
                section.card aria-labelledby="delivery-title" {
                    h2 #delivery-title { "Notices" }
                    div.gov-table-wrap {
                        table.gov-table {
                            caption.visually-hidden { "Delivery of this election's emails" }
                            thead { tr { th scope="col" { "Notice" } th scope="col" { "Sent" } th scope="col" { "Pending" } th scope="col" { "Failed" } } }
                            tbody {
                                @for d in &view.delivery {
                                    tr { td { (d.notice) } td.num { (d.sent) } td.num { (d.pending) } td.num { (d.failed) } }
                                }
                            }
                        }
                    }
                    div.actions {
                        @if let Some(url) = &view.remind_url {
                            (post_button(url, &ctx.csrf, html! { "Remind those who have not voted" }, ButtonKind::Secondary))
                        }
                        @if let Some(url) = &view.close_url {
                            (post_button(url, &ctx.csrf, html! { "Close and count" }, ButtonKind::Primary))
                        }
                    }
                }
            }
        }
    };
    page(ctx, &view.title, body)
}

/// `GET /governance/elections/{id}/ballot/{secret}`: the secret ballot.
pub fn ballot(ctx: &PageContext, view: &BallotView) -> Markup {
    let n = view.candidates.len();
    let (legend, help) = match view.kind {
        BallotKind::Ranked => (
            "Rank the candidates",
            format!(
                "Give your favourite 1, your next choice 2, and so on. Rank as many or as few as you like, each number once, without gaps. {} seat(s) to fill.",
                view.seats
            ),
        ),
        BallotKind::Approval => (
            "Approve candidates",
            "Tick every candidate you approve of.".to_string(),
        ),
        BallotKind::Plurality => ("Choose one candidate", "Choose one.".to_string()),
    };
    let fields = html! {
        fieldset.field.gov-ballot aria-describedby="ballot-help" {
            legend { (legend) }
            p.help #ballot-help { (help) }
            @if let Some(err) = view.errors.get("ballot") {
                p.field-error #ballot { span.visually-hidden { "Error: " } (err) }
            }
            ul.gov-ballot-list {
                @for c in &view.candidates {
                    li.gov-ballot-row {
                        @match view.kind {
                            BallotKind::Ranked => {
                                @let id = format!("rank-{}", c.number);
                                div.select-wrap.gov-rank {
                                    select id=(id) name=(id) aria-describedby={ (id) "-who" } {
                                        option value="" selected[view.value(&id).is_empty()] { "–" }
                                        @for r in 1..=n {
                                            @let v = r.to_string();
                                            option value=(v) selected[view.value(&id) == v] { (r) }
                                        }
                                    }
                                }
                                label for=(id) id={ (id) "-who" } { span.choice-label { (c.name) } span.choice-hint { "@" (c.handle) } }
                            }
                            BallotKind::Approval => {
                                @let id = format!("approve-{}", c.number);
                                @let v = c.number.to_string();
                                input type="checkbox" id=(id) name="approve" value=(v) checked[view.has("approve", &v)];
                                label for=(id) { span.choice-label { (c.name) } span.choice-hint { "@" (c.handle) } }
                            }
                            BallotKind::Plurality => {
                                @let id = format!("choice-{}", c.number);
                                @let v = c.number.to_string();
                                input type="radio" id=(id) name="choice" value=(v) checked[view.has("choice", &v)];
                                label for=(id) { span.choice-label { (c.name) } span.choice-hint { "@" (c.handle) } }
                            }
                        }
                        @if !c.statement.is_empty() {
                            details.gov-details { summary { "Statement" span.visually-hidden { " of " (c.name) } } p.gov-statement { (c.statement) } }
                        }
                    }
                }
            }
        }
        (crate::components::checkbox("blank", "Cast a blank ballot", view.has("blank", "true"), Some("Counts as turnout, for nobody."), None))
        div.form-actions { (button("Cast my ballot", ButtonKind::Primary)) }
        p.help { "Your ballot is stored with a random receipt code and nothing that names you. The link works once." }
    };
    let body = html! {
        (page_header(&[CRUMB, (&view.election_title, &view.election_url)], "Your ballot",
            Some(html! { p { (view.election_title) " · " (view.method) " · voting closes " (view.closes) } }), None))
        div.stack { section.card { (post_form(&view.action, &ctx.csrf, &view.errors, fields)) } }
    };
    page(ctx, "Your ballot", body)
}

/// The page after casting: the receipt code.
pub fn ballot_receipt(ctx: &PageContext, view: &ReceiptView) -> Markup {
    let body = html! {
        (page_header(&[CRUMB, (&view.election_title, &view.election_url)], "Your ballot is cast", None, None))
        div.stack {
            section.card.callout.callout-success aria-labelledby="receipt-title" {
                h2 #receipt-title { (icon(Icon::Check)) "Receipt" }
                p { "Your receipt code:" }
                p.gov-receipt { code #receipt { (view.receipt) } }
                p { "Once voting closes, find it on the " a href=(view.receipts_url) { "list of received ballots" } ". Keep it to yourself: with the code anyone could pick out your ballot." }
                p { "This is the only time the code is shown: it is not emailed, so that nothing stored links you to your ballot. Write it down or save it now." }
                p { a.btn.btn-secondary download="ballot-receipt.txt" href=(format!("data:text/plain;charset=utf-8,{}", view.receipt)) { "Save the receipt" } }
            }
        }
    };
    page(ctx, "Ballot cast", body)
}

/// `GET /governance/elections/{id}/receipts`.
pub fn receipts(ctx: &PageContext, view: &ReceiptsView) -> Markup {
    let body = html! {
        (page_header(&[CRUMB, (&view.election_title, &view.election_url)], "Received ballots",
            Some(html! { p { (view.receipts.len()) " ballot(s) received. Receipt codes are random and listed in alphabetical order, so the list says nothing about who voted when." } }), None))
        div.stack {
            section.card {
                @if view.receipts.is_empty() {
                    p.muted { "No ballots yet." }
                } @else {
                    ol.gov-receipts { @for r in &view.receipts { li { code { (r) } } } }
                }
                @if let Some(url) = &view.blt_url { p { a href=(url) { "Download the anonymised ballots (BLT)" } } }
            }
        }
    };
    page(ctx, "Received ballots", body)
}

/// `GET /governance/elections/{id}/result`: every round, transfer and tie decision.
pub fn election_result(ctx: &PageContext, view: &ResultView) -> Markup {
    let body = html! {
        (page_header(&[CRUMB, (&view.election_title, &view.election_url)], "Result",
            Some(html! { p { (view.method) " · " (view.seats) " seat(s) · seed " code { (view.seed) } } }), None))
        div.stack.gov-wide {
            section.card.callout.callout-success aria-labelledby="elected-title" {
                h2 #elected-title { "Elected" }
                @if view.elected.is_empty() { p { "Nobody." } } @else {
                    ol { @for e in &view.elected { li { strong { (e) } } } }
                }
                dl.facts {
                    div { dt { "Valid votes" } dd { (view.valid_votes) } }
                    div { dt { "Invalid" } dd { (view.invalid_votes) } }
                    @if let Some(q) = &view.quota { div { dt { "Quota" } dd { (q) } } }
                    div { dt { "Turnout" } dd { (view.turnout) } }
                }
                @for note in &view.notes { p.help { (note) } }
                div.actions {
                    a.btn.btn-secondary.btn-small href=(view.receipts_url) { "Receipts" }
                    a.btn.btn-quiet.btn-small href=(view.blt_url) { "Ballots (BLT)" }
                    a.btn.btn-quiet.btn-small href=(view.json_url) { "Count (JSON)" }
                }
            }
            @for round in &view.rounds {
                section.card aria-labelledby={ "round-" (round.number) } {
                    h2 id={ "round-" (round.number) } { "Round " (round.number) ": " (round.description) }
                    div.gov-table-wrap {
                        table.gov-table {
                            thead { tr {
                                th scope="col" { "Candidate" } th scope="col" { "Votes" }
                                @if round.keep_factors.is_some() { th scope="col" { "Keep factor" } }
                            } }
                            tbody {
                                @for (i, (name, votes)) in view.candidates.iter().zip(&round.votes).enumerate() {
                                    tr {
                                        th scope="row" { (name) } td.num { (votes) }
                                        @if let Some(keep) = &round.keep_factors { td.num { @if let Some(k) = keep.get(i) { (k) } } }
                                    }
                                }
                                tr.gov-muted-row { th scope="row" { "Non-transferable" } td.num { (round.non_transferable) } }
                                @if let Some(r) = &round.rounding { tr.gov-muted-row { th scope="row" { "Lost to rounding" } td.num { (r) } } }
                                @if let Some(q) = &round.quota { tr.gov-muted-row { th scope="row" { "Quota" } td.num { (q) } } }
                            }
                        }
                    }
                    @if let Some(n) = round.iterations { p.help { (n) " iteration(s) of the keep factors." } }
                    @if !round.events.is_empty() {
                        ul.gov-events { @for e in &round.events { li { (event(e)) } } }
                    }
                }
            }
            details.card.gov-details {
                summary { "The count as text" }
                pre.gov-pre { (view.text) }
            }
        }
    };
    page(ctx, "Result", body)
}

/// One event of a round, in words.
fn event(e: &EventView) -> Markup {
    match e {
        EventView::Elected { name, votes } => {
            html! { strong { (name) } " is elected with " (votes) "." }
        }
        EventView::Excluded { name, votes } => html! { (name) " is excluded with " (votes) "." },
        EventView::SurplusTransferred {
            name,
            surplus,
            transferred,
            non_transferable,
            rounding,
        } => html! {
            "The surplus of " (name) " (" (surplus) ") is transferred: " (transferred) " to continuing candidates, "
            (non_transferable) " non-transferable, " (rounding) " lost to rounding."
        },
        EventView::TieBroken {
            purpose,
            tied,
            chosen,
            decided_by,
        } => html! {
            "Tie (" (purpose) ") between " (tied.join(", ")) ": " (chosen) " chosen "
            @match decided_by {
                TieDecision::EarlierRound { round } => { "by the votes at round " (round) "." }
                TieDecision::Lot { draw_number, draw } => { "by lot (draw " (draw_number) " from the seed, value " (draw) ")." }
            }
        },
    }
}

/// `GET /governance/motions/{id}`.
pub fn motion(ctx: &PageContext, view: &MotionView) -> Markup {
    let body = html! {
        (page_header(&[CRUMB], &view.title, Some(html! {
            p { (badge(&view.status, if view.status == "Passed" { Tone::Success } else if view.status == "Open" { Tone::Info } else { Tone::Neutral }))
                " Proposed " (view.created) @if let Some(by) = &view.proposed_by { " by @" (by) } }
        }), None))
        div.stack {
            section.card aria-labelledby="proposal-title" {
                h2 #proposal-title { "Proposal" }
                ul { @for line in &view.proposal { li { (line) } } }
                p.help { "Passes with a majority of the Resident seats and a majority of the Worker seats; vacant seats and abstentions count as not in favour." }
            }
            section.card aria-labelledby="votes-title" {
                h2 #votes-title { "Votes" }
                @if view.votes.is_empty() { p.muted { "No votes yet." } } @else {
                    ul.rows { @for (who, side, position) in &view.votes {
                        li.row { div.row-main { span.row-title { (who) } span.row-meta { (side) " · " (position) } } }
                    } }
                }
                @if let Some(d) = &view.decision { p { strong { (d) } } }
                @if let Some(url) = &view.vote_url {
                    (post_form(url, &ctx.csrf, &FormErrors::new(), html! {
                        (radio_group("position", "Your vote", &[Choice::new("for", "For"), Choice::new("against", "Against"), Choice::new("abstain", "Abstain")], "", None, None))
                        div.form-actions { (button("Vote", ButtonKind::Primary)) }
                    }))
                }
            }
        }
    };
    page(ctx, &view.title, body)
}
