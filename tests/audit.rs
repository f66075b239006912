//! `GET /api/v1/events` as an audit log: "who freed table 7 at 21:40?" is
//! one query combining `type=` (exact or prefix), `table=`, `actor=` and
//! `since=`/`until=` (seqs or RFC 3339 times). Real HTTP, a real SQLite
//! file.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;

async fn events(base: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let res = http()
        .get(format!("{base}/api/v1/events"))
        .bearer_auth(VIEWER)
        .query(query)
        .send()
        .await
        .expect("GET /events");
    let status = res.status().as_u16();
    (status, res.json().await.expect("json"))
}

fn seqs(page: &Value) -> Vec<u64> {
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect()
}

/// `ts` (UTC, `Z`) written as the same instant in UTC+01:00.
fn plus_one_hour(ts: &str) -> String {
    let t = mesero::clock::parse(ts).expect("ts") + Duration::from_secs(3600);
    let local = mesero::clock::format(t);
    format!("{}+01:00", local.trim_end_matches('Z'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_freed_table_7_is_one_query() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let res = http()
        .post(format!("{}/api/v1/tables", d.base))
        .bearer_auth(ADMIN)
        .json(&json!({"id": 7, "number": "7"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 201);

    // Two people work the floor: the staff token and the admin's.
    for (token, table, state) in [
        (STAFF, 7, "occupied"),
        (STAFF, 3, "occupied"),
        (ADMIN, 7, "free"),
        (STAFF, 3, "free"),
        (STAFF, 7, "occupied"),
        (STAFF, 7, "free"),
    ] {
        let (status, body) = put_state(
            &d.base,
            Some(token),
            table,
            &format!(r#"{{"state":"{state}"}}"#),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }

    // Every change of table 7, and who made it.
    let (status, all7) = events(&d.base, &[("type", "table.state"), ("table", "7")]).await;
    assert_eq!(status, 200, "{all7}");
    let who: Vec<(String, String)> = all7["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().expect("actor").to_string(),
                e["data"]["to"].as_str().expect("to").to_string(),
            )
        })
        .collect();
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        who,
        vec![
            pair("staff:staff", "occupied"),
            pair("staff:admin", "free"),
            pair("staff:staff", "occupied"),
            pair("staff:staff", "free"),
        ]
    );
    let freed_by_admin = all7["events"][1].clone();
    let seq = freed_by_admin["seq"].as_u64().expect("seq");
    let ts = freed_by_admin["ts"].as_str().expect("ts").to_string();

    // By actor, with a type prefix: what the admin did to table 7.
    let (_, mine) = events(
        &d.base,
        &[("type", "table"), ("table", "7"), ("actor", "staff:admin")],
    )
    .await;
    let kinds: Vec<&str> = mine["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(kinds, ["table.created", "table.state"]);
    assert_eq!(seqs(&mine).last(), Some(&seq));
    assert_eq!(mine["complete"], true);

    // "At 21:40": a time window around the moment, written with an offset.
    let (status, at) = events(
        &d.base,
        &[
            ("type", "table.state"),
            ("table", "7"),
            ("since", &ts),
            ("until", &plus_one_hour(&ts)),
        ],
    )
    .await;
    assert_eq!(status, 200, "{at}");
    let found = at["events"].as_array().expect("events");
    assert!(
        found.iter().any(|e| e["seq"] == seq) && found.iter().all(|e| e["ts"] == ts.as_str()),
        "only the events of that instant: {at}"
    );
    assert_eq!(found[0]["actor"], "staff:admin");
    assert_eq!(found[0]["data"]["from"], "occupied");

    // `until` as a seq is inclusive; it combines with `limit` and paging.
    let (_, upto) = events(
        &d.base,
        &[
            ("type", "table.state"),
            ("table", "7"),
            ("until", &seq.to_string()),
        ],
    )
    .await;
    assert_eq!(seqs(&upto).last(), Some(&seq));
    let (_, first) = events(
        &d.base,
        &[("type", "table.state"), ("table", "7"), ("limit", "1")],
    )
    .await;
    assert_eq!(seqs(&first).len(), 1);
    let next = first["next_since"]
        .as_u64()
        .expect("next_since")
        .to_string();
    let (_, second) = events(
        &d.base,
        &[
            ("type", "table.state"),
            ("table", "7"),
            ("limit", "1"),
            ("since", &next),
        ],
    )
    .await;
    assert_eq!(seqs(&second), vec![seq]);

    // A time before everything and after everything.
    let (_, none) = events(
        &d.base,
        &[("since", "2999-01-01T00:00:00Z"), ("table", "7")],
    )
    .await;
    assert_eq!(seqs(&none), Vec::<u64>::new());
    let (_, early) = events(&d.base, &[("until", "2000-01-01T00:00:00+02:00")]).await;
    assert_eq!(seqs(&early), Vec::<u64>::new());

    // Bad values: 400 naming the parameter.
    for (name, value) in [
        ("since", "yesterday"),
        ("until", "21:40"),
        ("until", "-3"),
        ("actor", "bob"),
        ("type", "tab"),
        ("table", "x"),
        ("limit", "0"),
    ] {
        let (status, body) = events(&d.base, &[(name, value)]).await;
        assert_eq!(status, 400, "{name}={value}: {body}");
        assert_eq!(body["error"]["code"], "bad_request");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(&format!("{name}:"))),
            "{name}={value}: {body}"
        );
    }
    d.stop().await;
}
