//! View models of the governance pages: the Circle of Stewards, elections, ballots, results
//! and motions.
//!
//! Like [`crate::view`], these are plain data filled by the instance: times arrive formatted,
//! URLs arrive built, and flags (`can_vote`, `is_admin`) say what the visitor may do. The ballot
//! models carry what the voter submitted so a ballot with a mistake comes back as they left it.

use crate::view::FormErrors;

/// A person as linked from governance pages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PersonRef {
    /// Local handle without `@`.
    pub handle: String,
    pub display_name: String,
}

/// One seat of the Circle.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeatView {
    /// "Resident" or "Worker".
    pub constituency: String,
    /// 1-based within its constituency.
    pub number: u32,
    pub holder: Option<PersonRef>,
    /// "until 12 March 2027", or how long the vacancy has its term.
    pub term: Option<String>,
    /// Set when the visitor may vacate this seat (the holder, an operator or a steward).
    pub vacate_url: Option<String>,
}

/// The Budget's shares in percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BudgetView {
    pub infrastructure: u8,
    pub operations: u8,
    pub patronage: u8,
    pub reserve: u8,
}

/// An election in a list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ElectionRow {
    pub url: String,
    pub title: String,
    pub constituency: String,
    pub phase: String,
    pub method: String,
    pub seats: u32,
    /// e.g. "voting 3 May – 10 May 2026"
    pub when: String,
    /// "Elected: Ada, Bo" once counted.
    pub outcome: Option<String>,
}

/// A motion in a list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MotionRow {
    pub url: String,
    pub title: String,
    /// "Open", "Passed" or "Not passed".
    pub status: String,
    pub proposed_by: Option<String>,
    pub created: String,
}

/// A Worker on the roll.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkerRow {
    pub person: PersonRef,
    /// "maintainer" or "contributor".
    pub role: String,
}

/// One entry of the Worker roles' audit log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleLogRow {
    pub person: PersonRef,
    /// e.g. "none → maintainer".
    pub change: String,
    pub by: Option<String>,
    pub reason: String,
    pub when: String,
}

/// The form that marks a Worker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleForm {
    pub handle: String,
    /// maintainer, contributor or none.
    pub role: String,
    pub reason: String,
    pub errors: FormErrors,
}

/// The Circle-size form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SizeForm {
    pub seats: String,
    pub errors: FormErrors,
}

/// The motion forms (new Budget, new Objectives).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MotionForm {
    pub infrastructure: String,
    pub operations: String,
    pub patronage: String,
    pub objectives: String,
    pub errors: FormErrors,
}

/// `GET /governance`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GovernanceView {
    pub seats_per_constituency: u32,
    pub seats: Vec<SeatView>,
    pub budget: BudgetView,
    pub objectives: Vec<String>,
    pub elections: Vec<ElectionRow>,
    pub motions: Vec<MotionRow>,
    pub workers: Vec<WorkerRow>,
    pub role_log: Vec<RoleLogRow>,
    /// Stewards (or operators before the first steward) create elections.
    pub can_run_elections: bool,
    /// Operators and stewards mark Workers, size the Circle and fill vacancies.
    pub can_manage: bool,
    /// Stewards propose motions.
    pub is_steward: bool,
    /// Constituencies with a vacancy that a countback could fill: (label, value).
    pub countback: Vec<(String, String)>,
    pub role_form: RoleForm,
    pub size_form: SizeForm,
    pub motion_form: MotionForm,
}

/// The new-election form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ElectionForm {
    pub title: String,
    pub constituency: String,
    pub seats: String,
    pub method: String,
    /// `datetime-local` values, UTC.
    pub nominations_open: String,
    pub nominations_close: String,
    pub voting_open: String,
    pub voting_close: String,
    pub quorum: String,
    pub by_election: bool,
    pub errors: FormErrors,
}

/// A candidate on the election page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CandidateView {
    pub person: PersonRef,
    pub statement: String,
    pub nominated_by: Option<String>,
    /// "Standing", "Awaiting acceptance", "Withdrawn", "Did not accept".
    pub status: String,
    pub ballot_number: Option<u32>,
    /// Set for the candidate themself while they may accept.
    pub accept_url: Option<String>,
    /// Set for the candidate themself while they may withdraw.
    pub withdraw_url: Option<String>,
}

/// Delivery counts of one notice.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeliveryRow {
    pub notice: String,
    pub sent: i64,
    pub pending: i64,
    pub failed: i64,
}

/// The nomination form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NominateForm {
    /// Empty for oneself.
    pub handle: String,
    pub statement: String,
    pub errors: FormErrors,
}

/// `GET /governance/elections/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ElectionView {
    pub url: String,
    pub title: String,
    pub constituency: String,
    pub method: String,
    pub seats: u32,
    pub phase: String,
    pub by_election: bool,
    /// (what, when) for the four times.
    pub timeline: Vec<(String, String)>,
    pub quorum_percent: u32,
    /// The published seed, once voting has opened.
    pub seed: Option<String>,
    /// (voted, on the roll), once voting has opened.
    pub turnout: Option<(i64, i64)>,
    pub candidates: Vec<CandidateView>,
    /// Set while nominations are open and the visitor is signed in.
    pub nominate_url: Option<String>,
    pub nominate_form: NominateForm,
    pub signed_in: bool,
    /// Steward tools: delivery status, reminders, close.
    pub is_admin: bool,
    pub delivery: Vec<DeliveryRow>,
    pub remind_url: Option<String>,
    pub close_url: Option<String>,
    pub receipts_url: String,
    pub result_url: Option<String>,
    pub blt_url: Option<String>,
    pub elected: Vec<String>,
    pub notes: Option<String>,
}

/// How a ballot is marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BallotKind {
    /// Number the candidates 1, 2, 3 ….
    #[default]
    Ranked,
    /// Tick every candidate you approve of.
    Approval,
    /// Choose one.
    Plurality,
}

/// A candidate on a ballot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BallotCandidate {
    pub number: u32,
    pub name: String,
    pub handle: String,
    pub statement: String,
}

/// `GET /governance/elections/{id}/ballot/{secret}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BallotView {
    pub election_title: String,
    pub election_url: String,
    /// Where the ballot posts (the same secret link).
    pub action: String,
    pub kind: BallotKind,
    pub method: String,
    pub seats: u32,
    pub closes: String,
    pub candidates: Vec<BallotCandidate>,
    /// What the voter submitted, to show the ballot again after a mistake.
    pub submitted: Vec<(String, String)>,
    pub errors: FormErrors,
}

impl BallotView {
    /// The submitted value of a field, or "".
    pub fn value(&self, field: &str) -> &str {
        self.submitted
            .iter()
            .find(|(k, _)| k == field)
            .map_or("", |(_, v)| v.as_str())
    }

    /// True if `field` was submitted with `value` (checkboxes and radios).
    pub fn has(&self, field: &str, value: &str) -> bool {
        self.submitted.iter().any(|(k, v)| k == field && v == value)
    }
}

/// The page after casting: the receipt.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiptView {
    pub election_title: String,
    pub election_url: String,
    pub receipt: String,
    pub receipts_url: String,
}

/// `GET /governance/elections/{id}/receipts`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiptsView {
    pub election_title: String,
    pub election_url: String,
    pub receipts: Vec<String>,
    pub closed: bool,
    pub blt_url: Option<String>,
}

/// One round of a count, for the result page. Numbers arrive as exact decimals (as the count
/// published them), never as floats.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoundView {
    pub number: u32,
    pub description: String,
    pub quota: Option<String>,
    /// Votes per candidate, in the order of [`ResultView::candidates`].
    pub votes: Vec<String>,
    /// Meek STV: each candidate's keep factor at the end of the round, in the same order.
    pub keep_factors: Option<Vec<String>>,
    pub non_transferable: String,
    /// Fractions lost to truncating transfer values, when there were any.
    pub rounding: Option<String>,
    /// Meek STV: iterations of the keep-factor loop.
    pub iterations: Option<u32>,
    /// What happened, in order.
    pub events: Vec<EventView>,
}

/// Something that happened in a round; the page words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventView {
    Elected {
        name: String,
        votes: String,
    },
    Excluded {
        name: String,
        votes: String,
    },
    SurplusTransferred {
        name: String,
        surplus: String,
        /// Credited to continuing candidates.
        transferred: String,
        non_transferable: String,
        rounding: String,
    },
    TieBroken {
        /// What the tie decided: "exclusion", "surplus order", "order of election", "seat".
        purpose: String,
        /// The tied candidates' names.
        tied: Vec<String>,
        /// Who the decision chose.
        chosen: String,
        decided_by: TieDecision,
    },
}

/// How a tie was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TieDecision {
    /// By the votes at this earlier round.
    EarlierRound { round: u32 },
    /// By lot: the `draw_number`-th draw from the published seed, with its raw value.
    Lot { draw_number: u64, draw: u64 },
}

/// `GET /governance/elections/{id}/result`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResultView {
    pub election_title: String,
    pub election_url: String,
    pub method: String,
    pub seats: u32,
    pub seed: String,
    pub valid_votes: String,
    pub invalid_votes: String,
    pub quota: Option<String>,
    pub turnout: String,
    pub candidates: Vec<String>,
    pub elected: Vec<String>,
    pub rounds: Vec<RoundView>,
    pub notes: Vec<String>,
    pub receipts_url: String,
    pub blt_url: String,
    pub json_url: String,
    /// The whole count as text (what `convene tally` prints).
    pub text: String,
}

/// `GET /governance/motions/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MotionView {
    pub title: String,
    pub status: String,
    pub proposed_by: Option<String>,
    pub created: String,
    /// The proposal, line by line (shares or objectives).
    pub proposal: Vec<String>,
    /// (name, constituency, position)
    pub votes: Vec<(String, String, String)>,
    /// Set when the visitor is a steward who has not voted on an open motion.
    pub vote_url: Option<String>,
    /// e.g. "Residents 2 of 3 for, Workers 1 of 3 for: 2 needed in each."
    pub decision: Option<String>,
}
