//! Governance (issue 4): an election run from the web UI with ballot links over real SMTP,
//! secret ballots counted once, receipts, reminders, results with every round and a BLT that
//! recounts the same; the Circle that cannot be unbalanced; budget motions by double majority.

use super::*;
use sqlx::Row;

/// `YYYY-MM-DDTHH:MM` in UTC, as a `datetime-local` input sends it.
fn local(t: i64) -> String {
    let days = t.div_euclid(86400);
    let secs = t.rem_euclid(86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// Fails if any stored bytes put a voter's address and a receipt code side by side: in one
/// page of the SQLite database, one frame of its write-ahead log, or one file elsewhere in the
/// data folder; on PostgreSQL, in one page of any table's file (dead row versions included).
/// The database and the log are read as they are on disk, freed pages too.
async fn no_stored_link(inst: &TestInstance, pairs: &[(&str, &str)]) {
    const PAGE: usize = 4096;
    let mut checked = 0;
    let mut check = |name: &str, chunk: &[u8]| {
        for (voter, receipt) in pairs {
            let has = |needle: &str| chunk.windows(needle.len()).any(|w| w == needle.as_bytes());
            assert!(
                !(has(voter) && has(receipt)),
                "{name} links {voter} to receipt {receipt}"
            );
        }
        checked += 1;
    };
    let mut stack = vec![inst.data_dir.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).expect("read a stored file");
            let name = path.display().to_string();
            if name.ends_with(".db") {
                for page in bytes.chunks(PAGE) {
                    check(&name, page);
                }
            } else if name.ends_with("-wal") {
                // A 32-byte header, then frames of a 24-byte header and one page.
                for frame in bytes.get(32..).unwrap_or_default().chunks(24 + PAGE) {
                    check(&name, frame);
                }
            } else {
                check(&name, &bytes);
            }
        }
    }
    if inst.settings.database_url.starts_with("postgres") {
        let pool = &inst.state().db.pool;
        sqlx::query("CHECKPOINT")
            .execute(pool)
            .await
            .expect("checkpoint");
        let data: String =
            sqlx::query_scalar("SELECT setting FROM pg_settings WHERE name = 'data_directory'")
                .fetch_one(pool)
                .await
                .expect("data directory");
        let files: Vec<String> = sqlx::query_scalar(
            "SELECT pg_relation_filepath(c.oid) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 't') \
             AND pg_relation_filepath(c.oid) IS NOT NULL",
        )
        .fetch_all(pool)
        .await
        .expect("table files");
        for file in files {
            let path = std::path::Path::new(&data).join(&file);
            let Ok(bytes) = std::fs::read(&path) else {
                // A server on another machine: its files cannot be read from here.
                continue;
            };
            for page in bytes.chunks(8192) {
                check(&file, page);
            }
        }
    }
    assert!(checked > 0, "something was scanned");
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
        .unwrap_or(0)
}

/// Sends whatever the outbox holds now (tests drain it explicitly).
async fn drain(inst: &TestInstance) {
    inst.state().mailer.drain().await.expect("outbox drains");
}

fn receipt_in(body: &str) -> String {
    let at = body.find("id=\"receipt\">").expect("a receipt on the page") + 13;
    body[at..]
        .split('<')
        .next()
        .expect("receipt text")
        .to_string()
}

fn mails_with(inst: &TestInstance, to: &str, subject: &str) -> Vec<convene_tests::smtp::Mail> {
    inst.mailbox
        .to(to)
        .into_iter()
        .filter(|m| m.subject.contains(subject))
        .collect()
}

async fn wait_subject(inst: &TestInstance, to: &str, subject: &str) -> convene_tests::smtp::Mail {
    for _ in 0..100 {
        if let Some(m) = mails_with(inst, to, subject).pop() {
            return m;
        }
        drain(inst).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no mail \u{201c}{subject}\u{201d} to {to}");
}

on_both!(
    an_election_from_nomination_to_published_result,
    |backend| async move {
        let inst = TestInstance::spawn(backend).await;
        let olive = inst
            .sign_up("olive@example.org", "olive", "Olive Operator")
            .await;
        let ann = inst.sign_up("ann@example.org", "ann", "Ann Able").await;
        let ben = inst.sign_up("ben@example.org", "ben", "Ben Brook").await;
        let cal = inst.sign_up("cal@example.org", "cal", "Cal Cole").await;
        inst.sign_up("dee@example.org", "dee", "Dee Late").await;
        let voters = [
            "olive@example.org",
            "ann@example.org",
            "ben@example.org",
            "cal@example.org",
            "dee@example.org",
        ];

        // The operator (no stewards yet) creates the election in the UI.
        let page = olive.get("/governance/elections/new").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let t = unix_now();
        let page = olive
            .submit(
                "/governance/elections",
                &[
                    ("title", "Resident Representatives 2026"),
                    ("constituency", "resident"),
                    ("seats", "2"),
                    ("method", "stv"),
                    ("nominations_open", &local(t - 3600)),
                    ("nominations_close", &local(t + 86400)),
                    ("voting_open", &local(t + 86400)),
                    ("voting_close", &local(t + 2 * 86400)),
                    ("quorum", "50"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_eq!(page.path, "/governance/elections/1");
        assert!(page.body.contains("Nominations open"), "{}", page.body);
        let election = "/governance/elections/1";
        // Everyone on the roll hears that nominations are open.
        for v in voters {
            wait_subject(&inst, v, "Nominations are open").await;
        }

        // Ann stands; Ben nominates Cal, who accepts; Olive stands too.
        ann.get(election).await;
        let page = ann
            .submit(
                &format!("{election}/nominations"),
                &[("handle", ""), ("statement", "Rooms for everyone.")],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("You are a candidate"), "{}", page.body);
        ben.get(election).await;
        let page = ben
            .submit(
                &format!("{election}/nominations"),
                &[("handle", "cal"), ("statement", "")],
            )
            .await;
        assert!(page.body.contains("Awaiting acceptance"), "{}", page.body);
        wait_subject(&inst, "cal@example.org", "Nomination received").await;
        let page = cal.get(election).await;
        let accept = page
            .body
            .split('"')
            .find(|s| s.starts_with(&format!("{election}/nominations/")) && s.ends_with("/accept"))
            .expect("Cal sees an accept button")
            .to_string();
        let page = cal
            .submit(&accept, &[("statement", "Quiet rooms, fair rules.")])
            .await;
        assert!(
            page.body.contains("Quiet rooms, fair rules."),
            "{}",
            page.body
        );
        wait_subject(&inst, "ben@example.org", "Nomination accepted").await;
        olive.get(election).await;
        olive
            .submit(
                &format!("{election}/nominations"),
                &[("handle", ""), ("statement", "")],
            )
            .await;
        // Someone not on any roll cannot be nominated.
        let page = ben
            .submit(
                &format!("{election}/nominations"),
                &[("handle", "nobody"), ("statement", "")],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);

        // Nominations close and voting opens (the test moves the times).
        inst.advance_clock(86400 + 120);
        let page = ann.get(election).await;
        assert!(page.body.contains("Voting open"), "{}", page.body);
        assert!(
            page.body.contains("Seed of the lot"),
            "the seed is published before the count"
        );
        // A nomination outside the window is refused with a clear page.
        let late = ben
            .submit(
                &format!("{election}/nominations"),
                &[("handle", ""), ("statement", "")],
            )
            .await;
        assert_eq!(late.status, StatusCode::FORBIDDEN);
        assert!(
            late.body
                .contains("Nominations for this election are not open"),
            "{}",
            late.body
        );

        // Every voter receives a ballot link over SMTP, after the candidate list.
        let mut links = Vec::new();
        for v in voters {
            wait_subject(&inst, v, "Candidates:").await;
            let mail = wait_subject(&inst, v, "Your ballot").await;
            let link = link_in(&mail.body, &inst.url("/governance/elections/1/ballot/"));
            links.push(link.trim_start_matches(&inst.base).to_string());
        }

        // Ballot numbers follow the names: Ann 1, Cal 2, Olive 3.
        let ballot = |i: usize| links[i].clone();
        let forged = inst
            .browser()
            .get("/governance/elections/1/ballot/forged-secret")
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);

        let mut receipts = Vec::new();
        let votes: [&[(&str, &str)]; 3] = [
            &[("rank-1", "1"), ("rank-2", "2"), ("rank-3", "")],
            &[("rank-1", "2"), ("rank-2", "1"), ("rank-3", "3")],
            &[("rank-1", "1"), ("rank-2", ""), ("rank-3", "2")],
        ];
        for (i, vote) in votes.iter().enumerate() {
            // Voter i+1 (ann, ben, cal) votes without signing in, through the HTML ballot.
            let voter = inst.browser();
            let page = voter.get(&ballot(i + 1)).await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            assert!(page.body.contains("name=\"rank-1\""), "{}", page.body);
            assert_eq!(
                page.headers
                    .get("referrer-policy")
                    .and_then(|v| v.to_str().ok()),
                Some("no-referrer")
            );
            if i == 0 {
                // Mistakes come back explained, and nothing is counted.
                let bad = voter
                    .post(&ballot(1), &[("rank-1", "1"), ("rank-2", "1")])
                    .await;
                assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
                assert!(
                    bad.body.contains("Two candidates have rank 1"),
                    "{}",
                    bad.body
                );
                let unknown = voter.post(&ballot(1), &[("rank-9", "1")]).await;
                assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
                assert!(unknown.body.contains("not standing"), "{}", unknown.body);
            }
            let page = voter.post(&ballot(i + 1), vote).await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            let receipt = receipt_in(&page.body);
            let mail = wait_subject(&inst, voters[i + 1], "Ballot recorded").await;
            assert!(
                !mail.body.contains(&receipt),
                "the confirmation names the voter, so it never carries the receipt"
            );
            assert!(page.body.contains("Save the receipt"), "{}", page.body);
            receipts.push(receipt);
        }
        // Ann tries to vote twice: the link is spent and nothing more is counted.
        let again = inst.browser();
        let page = again.get(&ballot(1)).await;
        assert_eq!(page.status, StatusCode::GONE);
        assert!(page.body.contains("already been used"), "{}", page.body);
        again.get("/signin").await; // a page with a form, for the CSRF token
        let page = again.post(&ballot(1), &[("rank-3", "1")]).await;
        assert_eq!(page.status, StatusCode::GONE, "{}", page.body);

        // Reminders reach only those who have not voted (Olive and Dee), with a fresh link.
        let page = olive.get(election).await;
        assert!(
            page.body.contains("Ballot link"),
            "stewards see delivery status"
        );
        let page = olive.submit(&format!("{election}/remind"), &[]).await;
        assert!(
            page.body.contains("2 people who have not voted"),
            "{}",
            page.body
        );
        let reminder = wait_subject(&inst, "olive@example.org", "Reminder").await;
        let dees = wait_subject(&inst, "dee@example.org", "Reminder").await;
        let dees = link_in(&dees.body, &inst.url("/governance/elections/1/ballot/"));
        let dees = dees.trim_start_matches(&inst.base).to_string();
        for v in &voters[1..4] {
            assert!(
                mails_with(&inst, v, "Reminder").is_empty(),
                "{v} voted: no reminder"
            );
        }
        let old = inst.browser().get(&ballot(0)).await;
        assert_eq!(
            old.status,
            StatusCode::FORBIDDEN,
            "the reminder replaced the old link"
        );
        let fresh = link_in(&reminder.body, &inst.url("/governance/elections/1/ballot/"));
        let fresh = fresh.trim_start_matches(&inst.base).to_string();
        let voter = inst.browser();
        voter.get(&fresh).await;
        let page = voter
            .post(&fresh, &[("rank-3", "1"), ("rank-1", "2")])
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        receipts.push(receipt_in(&page.body));
        // Mid-vote, nothing stored links a voter to a receipt (issue 10, item 1).
        let pairs: Vec<(&str, &str)> = voters[1..4]
            .iter()
            .chain(["olive@example.org"].iter())
            .zip(&receipts)
            .map(|(v, r)| (*v, r.as_str()))
            .collect();
        no_stored_link(&inst, &pairs).await;

        // Receipts are published only after the close.
        let page = inst.browser().get(&format!("{election}/receipts")).await;
        assert!(!page.body.contains(&receipts[0]));

        // Voting ends; the next visit closes and counts.
        inst.advance_clock(86400 + 120);
        let late = inst.browser().get(&dees).await;
        assert_eq!(late.status, StatusCode::GONE, "no vote after the close");
        assert!(late.body.contains("closed"), "{}", late.body);
        let page = inst.browser().get(&format!("{election}/result")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("Round 1"), "{}", page.body);
        assert!(page.body.contains("First preferences"), "{}", page.body);
        let result: serde_json::Value = inst
            .browser()
            .client
            .get(inst.url(&format!("{election}/result.json")))
            .send()
            .await
            .expect("result.json")
            .json()
            .await
            .expect("json");
        let elected: Vec<String> = result["elected"]
            .as_array()
            .expect("elected")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        // First preferences: Ann 2, Cal 1, Olive 1; quota 2: Ann is elected at once with no
        // surplus, and Cal and Olive are level in every round: the published seed's lot decides.
        assert_eq!(elected.len(), 2, "{result}");
        assert_eq!(elected[0], "Ann Able (@ann)", "{result}");
        assert!(
            page.body.contains("by lot"),
            "the tie decision is shown: {}",
            page.body
        );
        // The page is rendered from the stored count read back as the governance core's type
        // (issue 7): every round with its candidates' votes and every event, in words.
        let rounds = result["rounds"].as_array().expect("rounds");
        assert!(rounds.len() >= 2, "{result}");
        for round in rounds {
            let heading = format!(
                "Round {}: {}",
                round["number"],
                round["description"].as_str().expect("a description")
            );
            assert!(page.body.contains(&heading), "{heading}: {}", page.body);
        }
        for row in [
            r#"<th scope="row">Ann Able (@ann)</th><td class="num">2</td>"#,
            r#"<th scope="row">Cal Cole (@cal)</th><td class="num">1</td>"#,
            r#"<th scope="row">Olive Operator (@olive)</th><td class="num">1</td>"#,
            "<strong>Ann Able (@ann)</strong> is elected with 2.",
            "Tie (exclusion) between Cal Cole (@cal), Olive Operator (@olive): ",
            " chosen by lot (draw 1 from the seed, value ",
        ] {
            assert!(page.body.contains(row), "{row}: {}", page.body);
        }
        let second = elected[1].as_str();
        let loser = if second == "Cal Cole (@cal)" {
            "Olive Operator (@olive)"
        } else {
            "Cal Cole (@cal)"
        };
        assert!(
            page.body.contains(&format!("{loser} is excluded with 1.")),
            "{}",
            page.body
        );
        assert!(
            page.body
                .contains(&format!("<strong>{second}</strong> is elected with ")),
            "{}",
            page.body
        );
        for r in &receipts {
            let page = inst.browser().get(&format!("{election}/receipts")).await;
            assert!(page.body.contains(r.as_str()), "receipt {r} is listed");
        }
        for v in voters {
            wait_subject(&inst, v, "Results:").await;
        }

        // The anonymised ballots recount to the same result.
        let blt = inst
            .browser()
            .client
            .get(inst.url(&format!("{election}/ballots.blt")))
            .send()
            .await
            .expect("blt")
            .text()
            .await
            .expect("text");
        assert!(blt.starts_with("3 2\n"), "{blt}");
        let seed: u64 = result["seed"].as_u64().expect("seed");
        let recount =
            convene::governance::tally::tally_text(&blt, "stv", None, seed).expect("recount");
        assert_eq!(recount.elected, elected);

        // The elected take Resident seats.
        let page = inst.browser().get("/governance").await;
        for name in &elected {
            let display = name.split(" (@").next().expect("a display name");
            assert!(page.body.contains(display), "{display} holds a seat");
        }
        let seated: i64 = sqlx::query("SELECT COUNT(*) AS n FROM circle_seats WHERE passport_id IS NOT NULL AND constituency = 'resident' AND election_id = 1")
            .fetch_one(&inst.state().db.pool)
            .await
            .expect("count")
            .try_get("n")
            .expect("n");
        assert_eq!(seated, 2, "both elected Residents took a seat");

        // Nothing stored links a ballot to a voter.
        let pool = &inst.state().db.pool;
        let columns = |table: &'static str| async move {
            let sql = match backend {
                Backend::Sqlite => {
                    format!("SELECT name FROM pragma_table_info('{table}') ORDER BY name")
                }
                Backend::Postgres => format!(
                    "SELECT CAST(column_name AS TEXT) AS name FROM information_schema.columns WHERE table_name = '{table}' ORDER BY column_name"
                ),
            };
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await
                .expect("columns")
                .iter()
                .map(|r| r.try_get::<String, _>("name").expect("name"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            columns("ballots").await,
            vec!["election_id", "ranking", "receipt"]
        );
        assert_eq!(
            columns("election_roll").await,
            vec!["election_id", "email", "passport_id", "token_hash", "voted"],
            "the roll has a bare voted flag and no time"
        );
        for r in &receipts {
            let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE payload LIKE $1")
                .bind(format!("%{r}%"))
                .fetch_one(pool)
                .await
                .expect("count")
                .try_get("n")
                .expect("n");
            assert_eq!(n, 0, "the mail queue no longer holds receipt {r}");
        }
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE payload LIKE '%/ballot/%'")
            .fetch_one(pool)
            .await
            .expect("count")
            .try_get("n")
            .expect("n");
        assert_eq!(n, 0, "no ballot link is left in the mail queue");
        let stored: i64 = sqlx::query("SELECT COUNT(*) AS n FROM ballots WHERE election_id = 1")
            .fetch_one(pool)
            .await
            .expect("count")
            .try_get("n")
            .expect("n");
        assert_eq!(stored, 4, "each voter's ballot counted once");
        assert_eq!(result["valid_votes"], "4");

        // A stored result that no longer reads back (here: an index past the candidates) is an
        // error page on the result, never a panic or a made-up count; the rest still shows.
        sqlx::query(
            "UPDATE elections SET result_json = REPLACE(result_json, '\"elected_indices\":[0,', '\"elected_indices\":[7,') WHERE id = 1",
        )
        .execute(pool)
        .await
        .expect("damaging the stored result");
        let page = inst.browser().get(&format!("{election}/result")).await;
        assert_eq!(
            page.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{}",
            page.body
        );
        assert!(!page.body.contains("Round 1"), "{}", page.body);
        let page = inst.browser().get("/governance").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(
            page.body.contains("The stored result cannot be read"),
            "{}",
            page.body
        );
        let page = inst.browser().get(election).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    }
);

/// Seats a Passport directly (test setup only: elections are covered above).
async fn seat(inst: &TestInstance, constituency: &str, seat_no: i64, handle: &str) {
    sqlx::query(
        "UPDATE circle_seats SET passport_id = (SELECT id FROM passports WHERE handle = $1) \
         WHERE constituency = $2 AND seat_no = $3",
    )
    .bind(handle)
    .bind(constituency)
    .bind(seat_no)
    .execute(&inst.state().db.pool)
    .await
    .expect("seating");
}

async fn seat_counts(inst: &TestInstance) -> (i64, i64) {
    let row = sqlx::query(
        "SELECT SUM(CASE WHEN constituency = 'resident' THEN 1 ELSE 0 END) AS r, \
         SUM(CASE WHEN constituency = 'worker' THEN 1 ELSE 0 END) AS w FROM circle_seats",
    )
    .fetch_one(&inst.state().db.pool)
    .await
    .expect("counts");
    (row.try_get("r").expect("r"), row.try_get("w").expect("w"))
}

on_both!(
    circle_stays_balanced_and_budget_needs_double_majority,
    |backend| async move {
        let inst = TestInstance::spawn(backend).await;
        let olive = inst
            .sign_up("olive@example.org", "olive", "Olive Operator")
            .await;
        let r1 = inst.sign_up("r1@example.org", "rea", "Rea Resident").await;
        let r2 = inst.sign_up("r2@example.org", "rob", "Rob Resident").await;
        let w1 = inst.sign_up("w1@example.org", "wim", "Wim Worker").await;
        let w2 = inst.sign_up("w2@example.org", "wes", "Wes Worker").await;

        // Operators mark Workers; every change is in the audit log on the governance page.
        olive.get("/governance").await;
        for h in ["wim", "wes"] {
            let page = olive
                .submit(
                    "/governance/workers",
                    &[
                        ("handle", h),
                        ("role", "maintainer"),
                        ("reason", "keeps the SFU running"),
                    ],
                )
                .await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        }
        let page = inst.browser().get("/governance").await;
        assert!(
            page.body.contains("none \u{2192} maintainer"),
            "{}",
            page.body
        );
        assert!(page.body.contains("keeps the SFU running"));
        // Someone who is neither operator nor steward cannot.
        r1.get("/governance").await;
        let page = r1
            .submit(
                "/governance/workers",
                &[("handle", "rea"), ("role", "maintainer")],
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);

        seat(&inst, "resident", 0, "rea").await;
        seat(&inst, "resident", 1, "rob").await;
        seat(&inst, "worker", 0, "wim").await;
        seat(&inst, "worker", 1, "wes").await;

        // Shrinking to one seat each would remove seated Representatives: refused, nothing changes.
        let page = olive
            .submit("/governance/circle/size", &[("seats", "1")])
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            page.body
        );
        assert!(page.body.contains("only 1 are vacant"), "{}", page.body);
        assert_eq!(seat_counts(&inst).await, (3, 3));
        let page = olive
            .submit("/governance/circle/size", &[("seats", "0")])
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        // Resizing always moves both sides together.
        let page = olive
            .submit("/governance/circle/size", &[("seats", "2")])
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_eq!(seat_counts(&inst).await, (2, 2));
        let page = olive
            .submit("/governance/circle/size", &[("seats", "4")])
            .await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(seat_counts(&inst).await, (4, 4));
        olive
            .submit("/governance/circle/size", &[("seats", "2")])
            .await;
        assert_eq!(seat_counts(&inst).await, (2, 2));

        // A budget motion: Residents both for, Workers split: not a double majority.
        let page = r1.get("/governance").await;
        assert!(page.body.contains("Propose a motion"));
        let page = r1
            .submit(
                "/governance/motions",
                &[
                    ("kind", "budget"),
                    ("infrastructure", "40"),
                    ("operations", "30"),
                    ("patronage", "29"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let motion = page.path.clone();
        assert!(motion.starts_with("/governance/motions/"), "{motion}");
        for (who, position) in [(&r1, "for"), (&r2, "for"), (&w1, "for")] {
            who.get(&motion).await;
            let page = who
                .submit(&format!("{motion}/vote"), &[("position", position)])
                .await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            assert!(page.body.contains("Open"), "{}", page.body);
        }
        // The operator holds no seat and cannot vote.
        olive.get(&motion).await;
        let page = olive
            .submit(&format!("{motion}/vote"), &[("position", "for")])
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        w2.get(&motion).await;
        let page = w2
            .submit(&format!("{motion}/vote"), &[("position", "against")])
            .await;
        assert!(page.body.contains("Not passed"), "{}", page.body);
        let page = inst.browser().get("/governance").await;
        assert!(
            page.body.contains("gov-share\">33%"),
            "the Budget is unchanged"
        );
        assert!(!page.body.contains("gov-share\">40%"));

        // The same Budget with both sides' majorities passes and is in force.
        let page = r2
            .submit(
                "/governance/motions",
                &[
                    ("kind", "budget"),
                    ("infrastructure", "40"),
                    ("operations", "30"),
                    ("patronage", "29"),
                ],
            )
            .await;
        let motion = page.path.clone();
        for who in [&r1, &r2, &w1, &w2] {
            who.get(&motion).await;
            who.submit(&format!("{motion}/vote"), &[("position", "for")])
                .await;
        }
        let page = inst.browser().get(&motion).await;
        assert!(page.body.contains("Passed"), "{}", page.body);
        let page = inst.browser().get("/governance").await;
        assert!(
            page.body.contains("40%") && page.body.contains("29%"),
            "{}",
            page.body
        );
        // A second vote by the same steward is refused.
        r1.get(&motion).await;
        let page = r1
            .submit(&format!("{motion}/vote"), &[("position", "against")])
            .await;
        assert_eq!(page.status, StatusCode::GONE);

        // A Representative resigns: the vacancy stays on their side; the Circle keeps its shape.
        r2.get("/governance").await;
        let page = r2.submit("/governance/circle/seats/rob/vacate", &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_eq!(seat_counts(&inst).await, (2, 2));
        let page = inst.browser().get("/governance").await;
        assert!(page.body.contains("Vacant seat"), "{}", page.body);
        // Nobody can take over someone else's seat by vacating it for them.
        let page = w1.submit("/governance/circle/seats/rea/vacate", &[]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
    }
);
