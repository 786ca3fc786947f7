//! Reading and writing BLT ballot files.
//!
//! BLT is the plain-text ballot format most STV software reads and writes (OpenSTV, OpaVote,
//! the Scottish council data sets):
//!
//! ```text
//! 4 2            candidates, seats
//! -4             optional: withdrawn candidates, as negative numbers
//! 3 1 2 0        weight, then candidate numbers in order of preference, then 0
//! 1 2=3 4 0      `=` joins candidates ranked equal
//! 2 0            a ballot that ranks nobody
//! 0              end of the ballots
//! "Alice"        one quoted name per candidate
//! "Bob"
//! "Carol"
//! "Dan"
//! "Board 2025"   the title
//! ```
//!
//! The reader also takes decimal weights (up to nine places), `#` comments, blank lines, several
//! names on one line, `""` inside a quoted name for a quote, and an unquoted title line (as some
//! published data sets have). Everything else that is off — wrong counts, unknown or repeated
//! candidates, a weight that is zero, negative or too large, missing names, text after the
//! title — is an [`Error::Blt`] naming the line. The reader never panics and its memory use
//! is bounded by the size of the text it is given.

use crate::election::{Election, Grouper, pack};
use crate::error::{Error, Result};
use crate::votes::Votes;

/// Most ballot lines a file may hold. Even a national electorate fits; a file past this is
/// more likely an attempt to exhaust the server than an election.
pub const MAX_BALLOT_LINES: usize = 100_000_000;

/// Parses BLT text into a validated [`Election`] (seats and withdrawals included).
pub fn parse(text: &str) -> Result<Election> {
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, strip_comment(l).trim()));
    let mut next_content = move || lines.find(|(_, l)| !l.is_empty());

    let (header_line, header) = next_content().ok_or_else(|| Error::blt(0, "the file is empty"))?;
    let mut fields = header.split_ascii_whitespace();
    let candidate_count = parse_count(fields.next(), header_line, "the number of candidates")?;
    let seats = parse_count(fields.next(), header_line, "the number of seats")?;
    if fields.next().is_some() {
        return Err(Error::blt(
            header_line,
            "the first line must hold only the number of candidates and of seats",
        ));
    }
    if candidate_count == 0 {
        return Err(Error::blt(
            header_line,
            "there must be at least one candidate",
        ));
    }
    if candidate_count > crate::election::MAX_CANDIDATES {
        return Err(Error::blt(
            header_line,
            format!(
                "{candidate_count} candidates is more than the {} supported",
                crate::election::MAX_CANDIDATES
            ),
        ));
    }
    if seats == 0 {
        return Err(Error::blt(
            header_line,
            "the number of seats must be at least 1",
        ));
    }

    let mut withdrawn = vec![false; candidate_count];
    let mut grouper = Grouper::default();
    let mut seen = vec![0usize; candidate_count];
    let mut entries: Vec<u32> = Vec::with_capacity(candidate_count);
    let mut ballot_lines = 0usize;
    let mut first = true;
    let mut last_line;
    loop {
        let Some((line, content)) = next_content() else {
            return Err(Error::blt(
                0,
                "the file ended before the line holding only 0 that closes the ballots",
            ));
        };
        last_line = line;
        if content == "0" {
            break;
        }
        if first && content.starts_with('-') {
            first = false;
            for field in content.split_ascii_whitespace() {
                let number = field
                    .strip_prefix('-')
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| {
                        Error::blt(
                            line,
                            format!("{field:?} is not a withdrawn candidate such as -2"),
                        )
                    })?;
                let slot = number
                    .checked_sub(1)
                    .and_then(|i| withdrawn.get_mut(i))
                    .ok_or_else(|| Error::blt(line, format!("withdrawn candidate {number} does not exist (there are {candidate_count})")))?;
                *slot = true;
            }
            continue;
        }
        first = false;
        ballot_lines += 1;
        if ballot_lines > MAX_BALLOT_LINES {
            return Err(Error::blt(
                line,
                format!("more than {MAX_BALLOT_LINES} ballot lines"),
            ));
        }
        let weight = parse_ballot(
            content,
            line,
            candidate_count,
            ballot_lines,
            &mut seen,
            &mut entries,
        )?;
        grouper
            .add(&entries, weight)
            .map_err(|m| Error::blt(line, m))?;
    }

    let mut strings = Vec::with_capacity(candidate_count + 1);
    let mut title = None;
    while let Some((line, content)) = next_content() {
        last_line = line;
        if strings.len() == candidate_count && !content.starts_with('"') {
            // Some published files carry the title unquoted.
            check_one_line(content, line)?;
            title = Some((line, content.to_string()));
            break;
        }
        let mut rest = content;
        while !rest.is_empty() {
            let (value, after) = read_quoted(rest, line)?;
            strings.push((line, value));
            rest = after.trim_start();
        }
        if strings.len() > candidate_count {
            break;
        }
    }
    if strings.len() < candidate_count {
        return Err(Error::blt(
            0,
            format!(
                "the file names {} of the {candidate_count} candidates",
                strings.len()
            ),
        ));
    }
    if title.is_none() && strings.len() > candidate_count {
        title = strings.pop();
    }
    if strings.len() > candidate_count {
        let (line, _) = &strings[candidate_count];
        return Err(Error::blt(
            *line,
            "more quoted strings than candidates plus a title",
        ));
    }
    if let Some((line, content)) = next_content() {
        return Err(Error::blt(
            line,
            format!("unexpected text after the title: {content:?}"),
        ));
    }
    let names: Vec<String> = strings.into_iter().map(|(_, s)| s).collect();
    for (i, name) in names.iter().enumerate() {
        if name.trim().is_empty() {
            return Err(Error::blt(
                last_line,
                format!("candidate {} has an empty name", i + 1),
            ));
        }
        if let Some(j) = names[..i].iter().position(|other| other == name) {
            return Err(Error::blt(
                last_line,
                format!("candidates {} and {} are both named {name:?}", j + 1, i + 1),
            ));
        }
    }
    let (ballots, total) = grouper.finish();
    let title = title.map(|(_, t)| t).unwrap_or_default();
    Ok(Election::from_validated(
        title,
        names,
        withdrawn,
        Some(seats),
        ballots,
        total,
    ))
}

/// Writes an election as BLT text that [`parse`] reads back to an equal election. Used to
/// publish anonymised ballots: identical ballots are already merged, so the file carries no
/// order of casting.
pub fn write(election: &Election) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let seats = election.seats().unwrap_or(1);
    let _ = writeln!(out, "{} {}", election.candidates().len(), seats);
    let withdrawn = election.withdrawn();
    if !withdrawn.is_empty() {
        let list: Vec<String> = withdrawn.iter().map(|c| format!("-{}", c + 1)).collect();
        let _ = writeln!(out, "{}", list.join(" "));
    }
    for ballot in election.ballots() {
        let _ = write!(out, "{}", ballot.weight());
        for group in ballot.ranks() {
            let joined: Vec<String> = group.iter().map(|c| (c + 1).to_string()).collect();
            let _ = write!(out, " {}", joined.join("="));
        }
        out.push_str(" 0\n");
    }
    out.push_str("0\n");
    for name in election.candidates() {
        let _ = writeln!(out, "{}", quote(name));
    }
    let _ = writeln!(out, "{}", quote(election.title()));
    out
}

fn quote(text: &str) -> String {
    // Newlines would end the line the reader expects the name on; BLT has no escape for them.
    let flat: String = text
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    format!("\"{}\"", flat.replace('"', "\"\""))
}

/// Drops a `#` comment unless the `#` sits inside a quoted string.
fn strip_comment(line: &str) -> &str {
    if !line.contains('#') {
        return line;
    }
    let mut in_quotes = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '#' if !in_quotes => return &line[..i],
            _ => {}
        }
    }
    line
}

fn parse_count(field: Option<&str>, line: usize, what: &str) -> Result<usize> {
    let field = field.ok_or_else(|| Error::blt(line, format!("missing {what}")))?;
    field.parse::<usize>().map_err(|_| {
        Error::blt(
            line,
            format!("{what} must be a whole number, not {field:?}"),
        )
    })
}

/// Parses one ballot line into `entries`, returning its weight.
fn parse_ballot(
    content: &str,
    line: usize,
    candidate_count: usize,
    ballot_number: usize,
    seen: &mut [usize],
    entries: &mut Vec<u32>,
) -> Result<Votes> {
    entries.clear();
    let mut fields = content.split_ascii_whitespace();
    let weight_text = fields
        .next()
        .ok_or_else(|| Error::blt(line, "empty ballot line"))?;
    if weight_text.starts_with('-') {
        return Err(Error::blt(
            line,
            format!("ballot weight {weight_text} is negative"),
        ));
    }
    let weight = Votes::parse_decimal(weight_text).ok_or_else(|| {
        Error::blt(line, format!("ballot weight {weight_text:?} is not a number from 0 to 1000000000 with at most 9 decimals"))
    })?;
    if weight == Votes::ZERO {
        return Err(Error::blt(line, "ballot weight must be positive"));
    }
    let mut closed = false;
    for field in fields {
        if closed {
            return Err(Error::blt(
                line,
                format!("text {field:?} after the 0 that ends the ballot"),
            ));
        }
        if field == "0" {
            closed = true;
            continue;
        }
        for (k, part) in field.split('=').enumerate() {
            let number: usize = part.parse().map_err(|_| {
                Error::blt(
                    line,
                    format!("{part:?} is not a candidate number (1 to {candidate_count})"),
                )
            })?;
            if number == 0 || number > candidate_count {
                return Err(Error::blt(
                    line,
                    format!("unknown candidate {number} (the file declares {candidate_count})"),
                ));
            }
            if seen[number - 1] == ballot_number {
                return Err(Error::blt(
                    line,
                    format!("candidate {number} appears twice on one ballot"),
                ));
            }
            seen[number - 1] = ballot_number;
            entries.push(pack(number - 1, k > 0));
        }
    }
    if !closed {
        return Err(Error::blt(line, "ballot does not end with 0"));
    }
    Ok(weight)
}

/// Reads one `"..."` string (with `""` for a quote) from the start of `text`.
fn read_quoted(text: &str, line: usize) -> Result<(String, &str)> {
    let body = text
        .strip_prefix('"')
        .ok_or_else(|| Error::blt(line, format!("expected a quoted name, found {text:?}")))?;
    let mut value = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            if let Some(&(_, '"')) = chars.peek() {
                chars.next();
                value.push('"');
                continue;
            }
            check_one_line(&value, line)?;
            return Ok((value, &body[i + 1..]));
        }
        value.push(c);
    }
    Err(Error::blt(line, "a quoted name is not closed"))
}

/// Names and the title are single lines of text: [`write`] has no way to carry a carriage
/// return or another control character (tabs aside) back, so a file holding one could not be
/// published again as read, and results would print it raw.
fn check_one_line(text: &str, line: usize) -> Result<()> {
    match text.chars().find(|&c| c.is_control() && c != '\t') {
        Some(c) => Err(Error::blt(
            line,
            format!("a name or title holds the control character {c:?}"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# a comment\n4 2\n-4\n3 1 2 0\n1 2=3 4 0\n\n2.5 3 0\n1 0\n0\n\"Alice\"\n\"Bob\" \"Carol\"\n\"Dan \"\"the man\"\"\"\n\"Board 2025\"\n";

    #[test]
    fn reads_every_feature_of_the_format() {
        let e = parse(SAMPLE).expect("valid file");
        assert_eq!(e.candidates(), ["Alice", "Bob", "Carol", "Dan \"the man\""]);
        assert_eq!(e.title(), "Board 2025");
        assert_eq!(e.seats(), Some(2));
        assert_eq!(e.withdrawn(), vec![3]);
        assert_eq!(
            e.total_weight(),
            Votes::parse_decimal("7.5").expect("decimal")
        );
        let mut ranks: Vec<(String, Vec<Vec<usize>>)> = e
            .ballots()
            .iter()
            .map(|b| (b.weight().to_string(), b.ranks()))
            .collect();
        ranks.sort();
        assert_eq!(
            ranks,
            vec![
                ("1".to_string(), vec![]),
                ("1".to_string(), vec![vec![1, 2], vec![3]]),
                ("2.5".to_string(), vec![vec![2]]),
                ("3".to_string(), vec![vec![0], vec![1]]),
            ]
        );
    }

    #[test]
    fn equal_ranks_parse_as_groups() {
        let e = parse("4 1\n1 1 2=3 4 0\n0\n\"A\"\n\"B\"\n\"C\"\n\"D\"\n\"T\"\n").expect("valid");
        assert_eq!(e.ballots()[0].ranks(), vec![vec![0], vec![1, 2], vec![3]]);
    }

    #[test]
    fn round_trips_through_write() {
        let e = parse(SAMPLE).expect("valid file");
        let again = parse(&write(&e)).expect("own output parses");
        assert_eq!(again, e);
    }

    /// Issue 10 (fuzzing): a carriage return inside a quoted name was read, but `write`
    /// turned it into a space, so the published file held another candidate's name.
    #[test]
    fn names_and_titles_with_control_characters_are_refused() {
        for text in [
            "2 1\n1 1 0\n0\n\"\r\rA\"\n\"B\"\n\"T\"\n",
            "2 1\n1 1 0\n0\n\"A\"\n\"B\u{7}\"\n\"T\"\n",
            "2 1\n1 1 0\n0\n\"A\"\n\"B\"\n\"T\r\r\"\n",
            "2 1\n1 1 0\n0\n\"A\"\n\"B\"\nWard\r6\n",
        ] {
            let (line, message) = line_of(text);
            assert!(message.contains("control character"), "{text:?}: {message}");
            assert!(line >= 4, "{text:?}: line {line}");
        }
        let tabbed = parse("2 1\n1 1 0\n0\n\"A\tB\"\n\"C\"\n\"T\"\r\n").expect("tabs and CRLF");
        assert_eq!(tabbed.candidates(), ["A\tB", "C"]);
        assert_eq!(parse(&write(&tabbed)).expect("own output parses"), tabbed);
    }

    #[test]
    fn accepts_an_unquoted_title() {
        let e = parse("2 1\n1 1 0\n0\n\"A\"\n\"B\"\nWard 6 - Elgin\n").expect("valid");
        assert_eq!(e.title(), "Ward 6 - Elgin");
    }

    fn line_of(text: &str) -> (usize, String) {
        match parse(text) {
            Err(Error::Blt { line, message }) => (line, message),
            other => panic!("expected a BLT error, got {other:?}"),
        }
    }

    #[test]
    fn hostile_files_get_clear_errors_with_lines() {
        let names = "\"A\"\n\"B\"\n\"T\"\n";
        let cases: Vec<(String, usize, &str)> = vec![
            (String::new(), 0, "empty"),
            ("x 1\n".into(), 1, "whole number"),
            ("2 0\n".into(), 1, "at least 1"),
            ("0 1\n".into(), 1, "at least one candidate"),
            (format!("2 1\n1 3 0\n0\n{names}"), 2, "unknown candidate 3"),
            (format!("2 1\n1 1 1 0\n0\n{names}"), 2, "twice"),
            (format!("2 1\n1 1=1 0\n0\n{names}"), 2, "twice"),
            (
                format!("2 1\n-1 1 0\n0\n{names}"),
                2,
                "not a withdrawn candidate",
            ),
            (format!("2 1\n1 1 0\n-2 1 0\n0\n{names}"), 3, "negative"),
            (format!("2 1\n0 1 0\n0\n{names}"), 2, "positive"),
            (
                format!("2 1\n99999999999999999999 1 0\n0\n{names}"),
                2,
                "not a number",
            ),
            (format!("2 1\n1 1 2\n0\n{names}"), 2, "does not end with 0"),
            (format!("2 1\n1 1 0 2\n0\n{names}"), 2, "after the 0"),
            (
                format!("2 1\n1 a 0\n0\n{names}"),
                2,
                "not a candidate number",
            ),
            ("2 1\n1 1 0\n".into(), 0, "ended"),
            ("2 1\n1 1 0\n0\n\"A\"\n".into(), 0, "names 1 of the 2"),
            (
                "2 1\n1 1 0\n0\n\"A\"\n\"B\"\n\"T\"\n\"extra\"\n".into(),
                7,
                "after the title",
            ),
            (
                "2 1\n1 1 0\n0\n\"A\"\n\"A\"\n\"T\"\n".into(),
                6,
                "both named",
            ),
            ("2 1\n1 1 0\n0\n\"A\n".into(), 4, "not closed"),
            (
                "2 1\n-3\n1 1 0\n0\n\"A\"\n\"B\"\n".into(),
                2,
                "does not exist",
            ),
            (
                format!("2 1\n600000000 1 0\n600000000 2 0\n0\n{names}"),
                3,
                "exceeds",
            ),
        ];
        for (text, line, needle) in cases {
            let (got_line, message) = line_of(&text);
            assert_eq!(got_line, line, "{text:?}: {message}");
            assert!(
                message.contains(needle),
                "{text:?}: {message:?} lacks {needle:?}"
            );
        }
    }
}
