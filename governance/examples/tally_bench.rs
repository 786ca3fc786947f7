//! Tally benchmark: `cargo run --release -p convene-governance --example tally_bench`.
//!
//! Generates synthetic elections deterministically (20 candidates, 5 seats, 100,000 and
//! 1,000,000 ballots), writes them as BLT text, and times parsing that text and counting it by
//! Scottish STV and by Meek STV. Voters come from five blocs of different sizes; each bloc
//! ranks its own party's four candidates first, then allied parties, with personal noise, and
//! ballots stop after a varying number of preferences (many voters rank only a few), which is
//! what real STV ballots look like and what makes transfers and exhaustion matter.

use std::fmt::Write as _;
use std::time::Instant;

use convene_governance::lot::Lot;
use convene_governance::{Method, blt, count};

const CANDIDATES: usize = 20;
const SEATS: usize = 5;

/// Bloc sizes (percent) and, per bloc, how much it likes each of the five parties (0 = most).
const BLOCS: [(u64, [u64; 5]); 5] = [
    (34, [0, 1, 3, 4, 2]),
    (26, [2, 0, 1, 4, 3]),
    (19, [3, 1, 0, 2, 4]),
    (13, [4, 3, 1, 0, 2]),
    (8, [1, 4, 3, 2, 0]),
];

fn synthetic_blt(ballots: usize, seed: u64) -> String {
    let mut rng = Lot::new(seed);
    let mut text = String::with_capacity(ballots * 24);
    let _ = writeln!(text, "{CANDIDATES} {SEATS}");
    let mut order: Vec<(u64, usize)> = Vec::with_capacity(CANDIDATES);
    for _ in 0..ballots {
        let pick = rng.next_u64() % 100;
        let mut acc = 0;
        let mut bloc = &BLOCS[0];
        for b in &BLOCS {
            acc += b.0;
            if pick < acc {
                bloc = b;
                break;
            }
        }
        order.clear();
        for c in 0..CANDIDATES {
            let party = c / 4;
            // Party affinity dominates; a popular candidate (lower index in the party) gets a
            // small edge; personal noise reorders within and sometimes across parties.
            let score = bloc.1[party] * 1000 + (c % 4) as u64 * 120 + rng.next_u64() % 900;
            order.push((score, c));
        }
        order.sort_unstable();
        // Length: 1 to 20 preferences, short ballots most common.
        let r = rng.next_u64() % 100;
        let len = match r {
            0..=17 => 1,
            18..=35 => 2,
            36..=52 => 3,
            53..=66 => 4,
            67..=77 => 5,
            78..=89 => 6 + (rng.next_u64() % 5) as usize,
            _ => 11 + (rng.next_u64() % 10) as usize,
        };
        text.push('1');
        for &(_, c) in order.iter().take(len) {
            let _ = write!(text, " {}", c + 1);
        }
        text.push_str(" 0\n");
    }
    text.push_str("0\n");
    for c in 0..CANDIDATES {
        let _ = writeln!(text, "\"Candidate {}\"", c + 1);
    }
    text.push_str("\"Synthetic benchmark election\"\n");
    text
}

fn main() {
    println!(
        "Convene tally benchmark: {CANDIDATES} candidates, {SEATS} seats, synthetic ballots (5 blocs)"
    );
    println!(
        "{:>10} {:>10} {:>9} {:>10} {:>12} {:>12} {:>7}",
        "ballots", "distinct", "BLT MB", "parse ms", "stv ms", "meek ms", "rounds"
    );
    for ballots in [100_000usize, 1_000_000] {
        let text = synthetic_blt(ballots, 2025);
        let t = Instant::now();
        let election = match blt::parse(&text) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("generated file does not parse: {e}");
                std::process::exit(1);
            }
        };
        let parse = t.elapsed();
        let t = Instant::now();
        let stv = count(&election, Method::ScottishStv, SEATS, 1);
        let stv_time = t.elapsed();
        let t = Instant::now();
        let meek = count(&election, Method::Meek, SEATS, 1);
        let meek_time = t.elapsed();
        let (stv, meek) = match (stv, meek) {
            (Ok(s), Ok(m)) => (s, m),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("count failed: {e}");
                std::process::exit(1);
            }
        };
        println!(
            "{:>10} {:>10} {:>9.1} {:>10.1} {:>12.1} {:>12.1} {:>7}",
            ballots,
            election.ballots().len(),
            text.len() as f64 / 1e6,
            parse.as_secs_f64() * 1e3,
            stv_time.as_secs_f64() * 1e3,
            meek_time.as_secs_f64() * 1e3,
            format!("{}/{}", stv.rounds.len(), meek.rounds.len()),
        );
        println!("           STV elected:  {}", stv.elected.join(", "));
        println!("           Meek elected: {}", meek.elected.join(", "));
    }
}
