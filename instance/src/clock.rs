//! The one clock the instance reads.
//!
//! Every timestamp the instance stores or compares (sessions, codes, invitations, election
//! windows, queued jobs) comes from a [`Clock`]. In production it is the system clock; tests
//! hold the same handle and [`Clock::advance`] it, so "two weeks later" is one call instead of
//! rewriting rows. The handle travels inside [`crate::db::Db`] because every reading of it ends
//! up in, or is compared with, a database column.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Seconds since the Unix epoch, shifted by an offset that only tests change.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// Seconds since the Unix epoch: the unit of every timestamp column.
    pub fn now(&self) -> i64 {
        chrono::Utc::now().timestamp() + self.offset.load(Ordering::Relaxed)
    }

    /// Moves this clock (and every handle cloned from it) `seconds` into the future.
    pub fn advance(&self, seconds: i64) {
        self.offset.fetch_add(seconds, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::Clock;

    #[test]
    fn advancing_moves_every_clone() {
        let clock = Clock::system();
        let other = clock.clone();
        let before = other.now();
        clock.advance(3600);
        let after = other.now();
        assert!(
            (3600..3610).contains(&(after - before)),
            "{before} → {after}"
        );
    }
}
