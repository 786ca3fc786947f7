//! The core: one function per operation a person, an admin or a peer can ask for.
//!
//! Doors (the pages, the JSON API, `convene admin`, and the ActivityPub inbox) parse
//! their input, call one use case here and render its result. A use case owns its checks
//! (who may do it) and every side effect: the database writes, the page cache, the SFU (ending
//! the media of whoever lost access), and queued mail. It takes a [`Core`] — the database with
//! its clock, the settings, the mail queue, the SFU handle and the page cache — never the HTTP
//! state, and returns the domain [`Error`](crate::error::Error) that each door maps to its own
//! format.
//!
//! ```text
//!   pages   API   convene admin   inbox
//!      \     |        |          /
//!       '----+---- core ----+---'
//!            |      |       |
//!        storage   SFU   job queue (mail, deliveries)
//! ```
//!
//! Media access is enforced twice, for the same reason a door and a bouncer both exist: a use
//! case that changes access ends the media of those who lost it at once (in this process), and
//! [`gathering::spawn_reconciler`] checks every live gathering against the database every few
//! seconds, which covers changes made by `convene admin` or by another process sharing the
//! database.

pub mod accounts;
pub mod admission;
pub mod followers;
pub mod gathering;
pub mod handles;
pub mod membership;
pub mod network;
pub mod partners;
pub mod passport_blocks;
pub mod rooms;
pub mod spaces;

use std::sync::Arc;

use crate::cache::PageCache;
use crate::config::Settings;
use crate::db::Db;
use crate::domain::passports::Passport;
use crate::domain::spaces::Space;
use crate::error::Result;
use crate::mail::Mailer;

/// What use cases work with. Cheap to clone.
#[derive(Clone)]
pub struct Core {
    /// The database, with the instance's one clock.
    pub db: Db,
    pub settings: Arc<Settings>,
    /// Outgoing mail, through the job queue.
    pub mailer: Mailer,
    /// The durable job queue (mail now, federation deliveries next).
    pub queue: crate::jobs::Queue,
    /// The instance's SFU; `None` in `convene admin`, whose changes reach gatherings through
    /// the serving process's reconciler.
    pub sfu: Option<convene_media::Sfu>,
    /// What public pages show, briefly cached; every write that changes it invalidates it.
    pub pages: Arc<PageCache>,
    /// This process among those sharing the database: which gatherings it holds.
    pub node: Arc<gathering::Node>,
    /// Held while an actor's key pair is made (see `activitypub::LocalDirectory`), so that
    /// requests wanting a new actor's key at once wait for one RSA key generation instead of
    /// each running their own.
    pub key_making: Arc<tokio::sync::Mutex<()>>,
    /// Local actors' private keys as read for signing, by their stored PEM (see
    /// `activitypub::LocalDirectory::keys_of`).
    pub signing_keys: Arc<crate::activitypub::SigningKeys>,
}

/// Who asks for an operation: a person (checked against the Space's roles) or the instance's
/// administrator at the command line (`convene admin`), who may do anything.
#[derive(Clone, Copy, Debug)]
pub enum Actor<'a> {
    Person(&'a Passport),
    Admin,
}

impl Actor<'_> {
    /// Requires an owner of `space` (or the administrator).
    async fn require_owner(self, db: &Db, space: &Space) -> Result<()> {
        match self {
            Actor::Person(p) => crate::domain::spaces::require_owner(db, space, p).await,
            Actor::Admin => Ok(()),
        }
    }

    /// Requires a member of `space` (or the administrator).
    async fn require_member(self, db: &Db, space: &Space) -> Result<()> {
        match self {
            Actor::Person(p) => crate::domain::spaces::require_member(db, space, p).await,
            Actor::Admin => Ok(()),
        }
    }

    fn passport_id(self) -> Option<i64> {
        match self {
            Actor::Person(p) => Some(p.id),
            Actor::Admin => None,
        }
    }
}

impl Core {
    /// Something public pages show has changed.
    pub(crate) fn changed(&self) {
        self.pages.invalidate();
    }
}
