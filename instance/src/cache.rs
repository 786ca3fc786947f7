//! A short-lived, in-process cache of what public pages show: a Space with its Rooms.
//!
//! The Space and Room pages are the instance's busiest reads, and between edits they show
//! the same rows to every visitor. Entries are dropped when anything is written through this
//! process (every successful unsafe request bumps [`PageCache::invalidate`]) and expire after
//! [`TTL`] regardless, which bounds how stale a page can be when another process sharing the
//! PostgreSQL database (or `convene admin`) made the change. Live presence is never cached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::db::Db;
use crate::domain::rooms::{self, Room};
use crate::domain::spaces::{self, Space};
use crate::error::{AppError, Result};

/// How long an entry may be served without being reloaded.
pub const TTL: Duration = Duration::from_secs(2);
/// Spaces kept at most; beyond it the cache is emptied (a cheap bound against slug probing).
const MAX_ENTRIES: usize = 1024;

/// A Space as its pages need it.
#[derive(Debug)]
pub struct SpaceSnapshot {
    pub space: Space,
    /// Every Room of the Space, by name; pages filter what a visitor may see.
    pub rooms: Vec<Room>,
    /// Each Room's id at the SFU, in the order of `rooms`, for presence lookups.
    pub media_ids: Vec<String>,
    pub member_count: usize,
    /// The Space page as an anonymous visitor sees it, with the presence counts it shows.
    /// Such a page holds nothing personal (no CSRF token, no name), so it is rendered once
    /// per snapshot and per change of presence.
    anonymous_page: Mutex<Option<(Vec<usize>, axum::body::Bytes)>>,
}

impl SpaceSnapshot {
    pub fn room(&self, slug: &str) -> Result<&Room> {
        self.rooms
            .iter()
            .find(|r| r.slug.as_str() == slug)
            .ok_or(AppError::NotFound)
    }

    /// The anonymous Space page rendered earlier for the same presence counts, if any.
    pub fn anonymous_page(&self, presence: &[usize]) -> Option<axum::body::Bytes> {
        let cached = self.anonymous_page.lock().ok()?;
        match cached.as_ref() {
            Some((counts, page)) if counts.as_slice() == presence => Some(page.clone()),
            _ => None,
        }
    }

    pub fn keep_anonymous_page(&self, presence: Vec<usize>, page: axum::body::Bytes) {
        if let Ok(mut cached) = self.anonymous_page.lock() {
            *cached = Some((presence, page));
        }
    }

    /// The Rooms a visitor sees, with their SFU ids: members all, others the listed ones that
    /// are not members-only.
    pub fn visible_rooms(&self, is_member: bool) -> impl Iterator<Item = (&Room, &str)> {
        self.rooms
            .iter()
            .zip(&self.media_ids)
            .filter(move |(r, _)| is_member || (r.listed && r.access != rooms::Access::Members))
            .map(|(r, id)| (r, id.as_str()))
    }
}

struct Entry {
    generation: u64,
    loaded: Instant,
    snapshot: Arc<SpaceSnapshot>,
}

#[derive(Default)]
pub struct PageCache {
    generation: AtomicU64,
    spaces: Mutex<HashMap<String, Entry>>,
}

impl PageCache {
    /// Forgets everything: something was written.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The Space at `slug` with its Rooms, from the cache when fresh.
    pub async fn space(&self, db: &Db, slug: &str) -> Result<Arc<SpaceSnapshot>> {
        // Read the generation before loading: an entry loaded while a write commits is then
        // tagged with the older generation and never served after the write.
        let generation = self.generation.load(Ordering::SeqCst);
        if let Ok(spaces) = self.spaces.lock()
            && let Some(entry) = spaces.get(slug)
            && entry.generation == generation
            && entry.loaded.elapsed() < TTL
        {
            return Ok(entry.snapshot.clone());
        }
        let space = spaces::by_slug(db, slug).await?;
        let rooms = rooms::visible(db, &space, true).await?;
        let member_count = spaces::member_count(db, &space).await?;
        let media_ids = rooms
            .iter()
            .map(crate::core::gathering::media_room_id)
            .collect();
        let snapshot = Arc::new(SpaceSnapshot {
            space,
            rooms,
            media_ids,
            member_count,
            anonymous_page: Mutex::new(None),
        });
        if let Ok(mut spaces) = self.spaces.lock() {
            if spaces.len() >= MAX_ENTRIES {
                spaces.clear();
            }
            spaces.insert(
                slug.to_string(),
                Entry {
                    generation,
                    loaded: Instant::now(),
                    snapshot: snapshot.clone(),
                },
            );
        }
        Ok(snapshot)
    }
}
