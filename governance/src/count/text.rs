//! The human-readable report of a count.

use std::fmt::Write as _;

use super::{Event, Outcome, TieRule};

impl Outcome {
    /// A plain-text, round-by-round report: the setup, each round's votes and events, every tie
    /// decision and how it was made, and the elected candidates in order.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let title = if self.title.is_empty() {
            "(untitled election)"
        } else {
            &self.title
        };
        let _ = writeln!(out, "{title}");
        let _ = writeln!(out, "Method: {}", self.method.long_name());
        let _ = writeln!(
            out,
            "Seats: {}   Seed: {} (lots by {})",
            self.seats, self.seed, self.lot
        );
        let _ = write!(
            out,
            "Valid votes: {}   Invalid: {}",
            self.valid_votes, self.invalid_votes
        );
        if let Some(q) = self.quota {
            let _ = write!(out, "   Quota: {q}");
        }
        out.push('\n');
        for note in &self.notes {
            let _ = writeln!(out, "Note: {note}");
        }
        let width = self
            .candidates
            .iter()
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(0)
            .max(16);
        for round in &self.rounds {
            let _ = writeln!(out, "\nRound {}: {}", round.number, round.description);
            if let Some(q) = round.quota {
                let _ = writeln!(out, "  {:<width$}  {:>16}", "(quota)", q.to_string());
            }
            for (c, name) in self.candidates.iter().enumerate() {
                if self.withdrawn.contains(&c) {
                    continue;
                }
                let votes = round
                    .votes
                    .get(c)
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                let _ = write!(out, "  {name:<width$}  {votes:>16}");
                if let Some(k) = round.keep_factors.as_ref().and_then(|k| k.get(c)) {
                    let _ = write!(out, "   keep {k}");
                }
                out.push('\n');
            }
            let _ = writeln!(
                out,
                "  {:<width$}  {:>16}",
                "(non-transferable)",
                round.non_transferable.to_string()
            );
            if round.rounding.units() > 0 {
                let _ = writeln!(
                    out,
                    "  {:<width$}  {:>16}",
                    "(lost to rounding)",
                    round.rounding.to_string()
                );
            }
            if let Some(i) = round.iterations {
                let _ = writeln!(out, "  iterations: {i}");
            }
            for event in &round.events {
                let _ = writeln!(out, "  - {}", describe(event));
            }
        }
        if let (Some(d), Some(p)) = (&self.pairwise, &self.strongest_paths) {
            out.push_str(
                "\nPairwise preferences d[row][column] / strongest paths p[row][column]:\n",
            );
            for (i, name) in self.candidates.iter().enumerate() {
                if self.withdrawn.contains(&i) {
                    continue;
                }
                let cells: Vec<String> = (0..self.candidates.len())
                    .filter(|j| !self.withdrawn.contains(j))
                    .map(|j| {
                        let cell = |m: &[Vec<_>]| m.get(i).and_then(|row| row.get(j)).copied();
                        match (i == j, cell(d), cell(p)) {
                            (false, Some(dij), Some(pij)) => format!("{dij}/{pij}"),
                            // Outcome's fields are public: a hand-built one may be ragged.
                            _ => "-".into(),
                        }
                    })
                    .collect();
                let _ = writeln!(out, "  {name:<width$}  {}", cells.join("  "));
            }
        }
        out.push_str("\nElected, in order:\n");
        for (i, name) in self.elected.iter().enumerate() {
            let _ = writeln!(out, "  {}. {name}", i + 1);
        }
        out
    }
}

fn describe(event: &Event) -> String {
    match event {
        Event::Elected { name, votes, .. } => format!("elected: {name} ({votes})"),
        Event::Excluded { name, votes, .. } => format!("excluded: {name} ({votes})"),
        Event::SurplusTransferred {
            name,
            surplus,
            transferred,
            non_transferable,
            rounding,
            ..
        } => format!(
            "surplus of {name} ({surplus}) transferred: {transferred} to continuing candidates, \
             {non_transferable} non-transferable, {rounding} lost to rounding"
        ),
        Event::TieBroken {
            purpose,
            names,
            name,
            rule,
            ..
        } => {
            let how = match rule {
                TieRule::EarlierRound { round } => format!("by the votes at round {round}"),
                TieRule::Lot { draw, draw_number } => {
                    format!("by lot (draw {draw_number}: {draw})")
                }
            };
            format!(
                "tie for {purpose} between {} decided {how}: {name}",
                names.join(", ")
            )
        }
    }
}
