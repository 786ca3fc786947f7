//! Remote input never panics: thousands of mutated copies of real-shaped documents go through
//! every parser that reads remote bytes, and each must return (Ok or Err), never panic.

use axum::http::{HeaderMap, HeaderValue};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use convene_federation::nodeinfo::{Links, NodeInfo};
use convene_federation::protocol::activity::Activity;
use convene_federation::protocol::actor::Actor;
use convene_federation::protocol::inbox::{GroupInbox, PersonInbox, parse_inbox};
use convene_federation::signature::parse_signature;
use convene_federation::text::plain_text;
use convene_federation::{Address, webfinger};

const SEEDS: &[&str] = &[
    r#"{"@context":"https://www.w3.org/ns/activitystreams","type":"Accept","id":"https://b.example/a/2","actor":"https://b.example/spaces/g","object":{"type":"Follow","id":"https://a.example/a/1","actor":"https://a.example/u/ada","object":"https://b.example/spaces/g"}}"#,
    r#"{"type":"Announce","id":"https://b.example/a/6","actor":"https://b.example/spaces/g","to":["https://www.w3.org/ns/activitystreams#Public"],"cc":"https://b.example/spaces/g/followers","audience":"https://b.example/spaces/g","object":{"type":"Create","id":"https://b.example/a/5","actor":"https://b.example/spaces/g","object":{"type":"Page","id":"https://b.example/r/1","attributedTo":"https://b.example/spaces/g","name":"Shed","content":"<p>hi</p>"}}}"#,
    r#"{"type":"Group","id":"https://b.example/rooms/shed","inbox":"https://b.example/rooms/shed/inbox","preferredUsername":"shed","attributedTo":"https://b.example/spaces/g","accessMode":"locked","capacity":8,"headCount":2,"endpoints":{"sharedInbox":"https://b.example/inbox"},"publicKey":{"id":"https://b.example/rooms/shed#main-key","owner":"https://b.example/rooms/shed","publicKeyPem":"-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----"}}"#,
    r#"{"subject":"acct:ada@a.example","aliases":["https://a.example/u/ada"],"links":[{"rel":"self","type":"application/activity+json","href":"https://a.example/u/ada"},{"rel":"http://ostatus.org/schema/1.0/subscribe","template":"https://a.example/i?uri={uri}"}]}"#,
    r#"{"version":"2.1","software":{"name":"convene","version":"0.1.0"},"protocols":["activitypub"],"usage":{"users":{"total":1}},"openRegistrations":true,"links":[{"rel":"http://nodeinfo.diaspora.software/ns/schema/2.1","href":"https://a.example/nodeinfo/2.1"}]}"#,
];

const SIGNATURE: &str = r#"keyId="https://a.example/u/ada#main-key",algorithm="rsa-sha256",headers="(request-target) host date digest",signature="AAAA""#;

fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..rng.gen_range(1..8) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.gen_range(0..bytes.len());
        match rng.gen_range(0..5) {
            0 => bytes[at] = rng.r#gen(),
            1 => {
                bytes.remove(at);
            }
            2 => {
                let specials = b"{}[]\",:\\<>&;#";
                bytes.insert(at, specials[rng.gen_range(0..specials.len())]);
            }
            3 => {
                let end = rng.gen_range(at..bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

#[test]
fn mutated_documents_never_panic_any_parser() {
    let mut rng = StdRng::seed_from_u64(8);
    let ada = Address::parse("ada@a.example").ok();
    let mut parsed = 0usize;
    for round in 0..4000 {
        let seed = SEEDS[round % SEEDS.len()].as_bytes();
        let body = mutate(&mut rng, seed);
        parsed += usize::from(parse_inbox::<Activity>(&body).is_ok());
        let _ = parse_inbox::<GroupInbox>(&body);
        let _ = parse_inbox::<PersonInbox>(&body);
        let _ = Actor::parse(&body);
        if let Some(ada) = &ada {
            let _ = webfinger::parse(&body, ada);
        }
        let _ = NodeInfo::parse(&body);
        let _ = Links::parse_best(&body);
        let text = String::from_utf8_lossy(&body);
        let _ = plain_text(&text, 50);

        let header = mutate(&mut rng, SIGNATURE.as_bytes());
        if let Ok(value) = HeaderValue::from_bytes(&header) {
            let mut headers = HeaderMap::new();
            headers.insert("signature", value);
            let _ = parse_signature(&headers);
        }
    }
    // Some mutations leave a valid activity (a changed letter in a name): the parsers were
    // really exercised on both paths.
    assert!(parsed > 0, "no mutated activity parsed at all");
    assert!(
        parsed < 4000,
        "every mutated activity parsed: the mutations did nothing"
    );
}
