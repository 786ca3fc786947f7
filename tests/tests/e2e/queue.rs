//! The job queue seen from outside (issue 7): mail retried while the SMTP server fails, the
//! server marked failing and then recovering, dead jobs listed for operators and retried.

use std::sync::atomic::Ordering;
use std::time::Duration;

use convene::jobs::{DestinationState, status};

use super::*;

/// The instance's mail destination in its queue.
fn smtp_destination(inst: &TestInstance) -> String {
    inst.state().mailer.destination().to_string()
}

/// Polls the queue's status until `done` says so (the worker runs in the background).
async fn wait_status(
    inst: &TestInstance,
    what: &str,
    done: impl Fn(&status::QueueStatus) -> bool,
) -> status::QueueStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = status::status(&inst.state().db).await.expect("status");
        if done(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited 20 s for {what}; the queue is {s:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asks for a sign-in code for an address without a Passport: one mail job through a door.
async fn mail_to(inst: &TestInstance, address: &str) {
    let b = inst.browser();
    b.get("/signin").await;
    let page = b.submit("/signin", &[("email", address)]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
}

on_both!(
    mail_is_retried_while_smtp_fails_and_the_server_is_held_until_it_answers,
    |backend| async move {
        let inst = TestInstance::spawn(backend).await;
        let olive = inst
            .sign_up("olive@example.org", "olive", "Olive Ops")
            .await;
        let ben = inst.sign_up("ben@example.org", "ben", "Ben").await;
        let destination = smtp_destination(&inst);
        inst.mailbox.refuse.store(true, Ordering::SeqCst);
        let people: Vec<String> = (0..5).map(|i| format!("late{i}@example.org")).collect();
        for p in &people {
            mail_to(&inst, p).await;
        }
        // Messages are tried and refused; after three failures in a row the server is failing
        // and the rest of its mail is held without being tried.
        let s = wait_status(&inst, "the SMTP server to be failing", |s| {
            s.destinations
                .iter()
                .any(|d| d.destination == destination && d.state == DestinationState::Failing)
                && s.kinds
                    .iter()
                    .any(|k| k.kind == "mail" && k.retrying + k.queued == 5 && k.running == 0)
        })
        .await;
        let d = s
            .destinations
            .iter()
            .find(|d| d.destination == destination)
            .expect("listed");
        assert!(d.consecutive_failures >= 3, "{d:?}");
        assert!(
            d.last_error.as_deref().is_some_and(|e| e.contains("451")),
            "{d:?}"
        );
        assert!(d.next_probe_at.is_some_and(|t| t > s.now), "{d:?}");
        let refused = inst.mailbox.refused.load(Ordering::SeqCst);
        assert_eq!(
            i64::try_from(refused).ok(),
            Some(d.consecutive_failures),
            "every attempt reached the server and counted against it"
        );
        assert!(
            refused <= 5,
            "no message was tried twice: {refused} attempts"
        );

        // A new message to a held server waits: nobody tries it before the probe is due.
        mail_to(&inst, "held@example.org").await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(inst.mailbox.refused.load(Ordering::SeqCst), refused);
        assert!(inst.mailbox.to("held@example.org").is_empty());

        // The operator sees it on the queue page; others may not look.
        let page = olive.get("/admin/queue").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains(&destination), "{}", page.body);
        assert!(page.body.contains("failing") && page.body.contains("451"));
        assert_eq!(ben.get("/admin/queue").await.status, StatusCode::FORBIDDEN);

        // The server is back. Once the probe is due, one message goes, the server is healthy
        // again, and everything held goes out at once.
        inst.mailbox.refuse.store(false, Ordering::SeqCst);
        inst.advance_clock(3600);
        inst.state().mailer.drain().await.expect("drain");
        for p in people
            .iter()
            .map(String::as_str)
            .chain(["held@example.org"])
        {
            inst.mailbox.wait_for(p, 1).await;
        }
        let s = wait_status(&inst, "the queue to be empty", |s| {
            s.kinds
                .iter()
                .any(|k| k.kind == "mail" && k.retrying + k.queued + k.running == 0)
        })
        .await;
        let d = s
            .destinations
            .iter()
            .find(|d| d.destination == destination)
            .expect("listed");
        assert_eq!((d.state, d.consecutive_failures), (DestinationState::Ok, 0));
        for p in &people {
            assert_eq!(inst.mailbox.to(p).len(), 1, "{p} got one message");
        }
        // /metrics counts the queue's jobs by kind and state.
        let metrics = inst.browser().get("/metrics").await.body;
        let done = metrics
            .lines()
            .find_map(|l| l.strip_prefix("convene_jobs{kind=\"mail\",state=\"done\"} "))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("mail jobs in {metrics}"));
        assert!(done >= people.len(), "{done} done mail jobs");
    }
);

on_both!(
    dead_mail_is_listed_for_operators_and_can_be_retried,
    |backend| async move {
        let inst = TestInstance::spawn(backend).await;
        let olive = inst
            .sign_up("olive@example.org", "olive", "Olive Ops")
            .await;
        let ben = inst.sign_up("ben@example.org", "ben", "Ben").await;
        inst.mailbox.reject.store(true, Ordering::SeqCst);
        mail_to(&inst, "ghost@example.org").await;
        // (Each part of the status is its own query, so wait for the counts to agree too.)
        let s = wait_status(&inst, "a dead job", |s| {
            !s.dead.is_empty() && s.kinds.iter().any(|k| k.dead == 1)
        })
        .await;
        let dead = &s.dead[0];
        assert_eq!(
            (dead.kind.as_str(), dead.tag.as_str()),
            ("mail", "signin-unknown")
        );
        assert!(
            dead.last_error
                .as_deref()
                .is_some_and(|e| e.contains("550")),
            "{dead:?}"
        );
        assert!(dead.retryable);
        // A refusal for good says nothing bad about the server: it is not held.
        assert!(
            s.destinations
                .iter()
                .all(|d| d.state == DestinationState::Ok)
        );
        // The same picture, as `convene admin queue --json` prints it.
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["dead"][0]["id"], dead.id.0);
        assert!(json["kinds"][0]["dead"].as_i64() == Some(1), "{json}");

        let page = olive.get("/admin/queue").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body.contains(&format!("#{}", dead.id.0)),
            "{}",
            page.body
        );
        assert!(
            page.body.contains("(550): no such mailbox here"),
            "{}",
            page.body
        );
        let retry = format!("/admin/queue/jobs/{}/retry", dead.id.0);
        assert!(page.body.contains(&retry), "a retry button");
        ben.get("/me").await;
        assert_eq!(ben.post(&retry, &[]).await.status, StatusCode::FORBIDDEN);

        inst.mailbox.reject.store(false, Ordering::SeqCst);
        let page = olive.submit(&retry, &[]).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("will be tried again"), "{}", page.body);
        let mail = inst.mailbox.wait_for("ghost@example.org", 1).await;
        assert!(
            mail.message_id.starts_with('<') && mail.message_id.ends_with("@localhost>"),
            "a Message-ID from the job's key: {:?}",
            mail.message_id
        );
        let s = wait_status(&inst, "no dead job", |s| s.dead.is_empty()).await;
        assert!(s.kinds.iter().any(|k| k.kind == "mail" && k.dead == 0));
    }
);
