//! View models of the operators' pages: the job queue (`GET /admin/queue`) and the live
//! gatherings by media node (`GET /admin/gatherings`).

/// Jobs of one kind by state.
#[derive(Debug, Clone, Default)]
pub struct QueueKindRow {
    pub kind: String,
    pub queued: i64,
    pub running: i64,
    pub retrying: i64,
    pub done: i64,
    pub dead: i64,
}

/// One destination (an SMTP server, a partner instance) and its health.
#[derive(Debug, Clone, Default)]
pub struct QueueDestinationRow {
    pub name: String,
    /// `ok`, `failing` or `unreachable`.
    pub state: String,
    pub pending: i64,
    pub consecutive_failures: i64,
    pub last_error: Option<String>,
    /// When it last failed, formatted.
    pub last_failure: Option<String>,
    /// When its jobs are next tried while it is held, formatted.
    pub next_try: Option<String>,
}

/// A job the queue gave up on.
#[derive(Debug, Clone, Default)]
pub struct QueueDeadRow {
    pub id: i64,
    pub kind: String,
    pub tag: String,
    pub destination: String,
    pub attempts: i64,
    pub error: String,
    /// When it was given up, formatted.
    pub when: String,
    /// Where the retry button posts; `None` when nothing is left to send.
    pub retry_url: Option<String>,
}

/// The whole page.
#[derive(Debug, Clone, Default)]
pub struct QueueView {
    pub kinds: Vec<QueueKindRow>,
    pub destinations: Vec<QueueDestinationRow>,
    pub dead: Vec<QueueDeadRow>,
}

/// A live gathering and the process that holds it.
#[derive(Debug, Clone, Default)]
pub struct GatheringRow {
    pub space_name: String,
    pub space_slug: String,
    pub room_name: String,
    pub room_slug: String,
    /// The holding process's node URL.
    pub node: String,
    /// Whether this process holds it.
    pub here: bool,
    /// People with media connected, when this process holds it.
    pub seated: Option<usize>,
    /// When the holder's claim runs out unless renewed, formatted.
    pub lease_until: String,
}
