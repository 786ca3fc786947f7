//! Fuzzing entry points: what `fuzz/fuzz_targets/blt.rs` runs under cargo-fuzz and what the
//! instance's `fuzz_replay` test runs over the kept corpus on stable Rust.
//!
//! An entry point takes arbitrary bytes and returns nothing; by contract it never panics. The
//! only panics in here are assertions of properties the module docs of [`crate::blt`] promise,
//! so a crash is always a bug in the code under test, never in the harness.

use crate::count::{Method, count};

/// Largest election the BLT entry point also counts: bigger ones would slow every execution
/// without reaching new code (the count's loops are the same at 13 candidates as at 12).
const MAX_COUNTED_CANDIDATES: usize = 12;
/// Largest number of distinct ballots the BLT entry point also counts.
const MAX_COUNTED_BALLOTS: usize = 256;

/// A BLT file as `convene tally FILE.blt` reads it: parsed, written back and parsed again to an
/// equal election, and (when small) counted by every method with the file's seats.
pub fn blt(data: &[u8]) {
    // `convene tally` reads the file into a `String`, so text that is not UTF-8 never
    // reaches the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(election) = crate::blt::parse(text) else {
        return;
    };
    let written = crate::blt::write(&election);
    let again = crate::blt::parse(&written)
        .unwrap_or_else(|e| panic!("blt::write output must parse again: {e}\n{written}"));
    assert_eq!(again, election, "blt::write must round-trip\n{written}");
    if election.candidates().len() <= MAX_COUNTED_CANDIDATES
        && election.ballots().len() <= MAX_COUNTED_BALLOTS
    {
        let seats = election.seats().unwrap_or(1);
        for method in [
            Method::ScottishStv,
            Method::Meek,
            Method::Irv,
            Method::Schulze,
            Method::Approval,
            Method::Plurality,
        ] {
            // Refusals (IRV for several seats, more seats than candidates) are fine; only a
            // panic is a finding.
            let _ = count(&election, method, seats, 0x5eed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_parses_goes_through_the_round_trip_and_the_counts() {
        let text = "3 1\n2 1 2 0\n1 3 0\n0\n\"Alice\"\n\"Bob\"\n\"Carol\"\n\"Board\"\n";
        let election = crate::blt::parse(text).expect("a valid file");
        assert_eq!(election.candidates().len(), 3);
        blt(text.as_bytes());
    }
}
