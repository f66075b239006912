//! Reservations end to end: real HTTP and SSE over loopback, a real
//! SQLite file, the daemon's scheduler on a manual clock (the test walks
//! the evening), in Europe/Madrid.

mod common;

use common::{STAFF, Sse, TestDaemon};
use mesero::clock::{self, Wall};
use mesero::config::Config;
use serde_json::{Value, json};
use std::path::Path;
use std::time::SystemTime;

/// Tables 9 and 10 join; together they seat 4 + 4.
const PLAN: &str = r#"
[[tables]]
id = 9
seats = 6
joins = [10]
combined_seats = 4

[[tables]]
id = 10
seats = 6
combined_seats = 4
"#;

fn config(dir: &Path) -> Config {
    Config::from_toml(
        Path::new("tests/fixtures/test.toml"),
        &format!("{}\n{PLAN}", common::FIXTURE),
        [
            (
                "MESERO_STORAGE_PATH".to_string(),
                dir.join("mesero.db").display().to_string(),
            ),
            ("MESERO_SITE_TIMEZONE".into(), "Europe/Madrid".into()),
        ],
    )
    .expect("config")
}

fn utc(text: &str) -> SystemTime {
    clock::parse(text).expect("time")
}

async fn send(
    method: reqwest::Method,
    base: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = common::http()
        .request(method, format!("{base}{path}"))
        .bearer_auth(STAFF);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn book(base: &str, body: Value) -> (u16, Value) {
    send(
        reqwest::Method::POST,
        base,
        "/api/v1/reservations",
        Some(body),
    )
    .await
}

async fn check_in(base: &str, code: &str) -> (u16, Value) {
    send(
        reqwest::Method::POST,
        base,
        "/api/v1/reservations/check-in",
        Some(json!({ "code": code })),
    )
    .await
}

async fn table(base: &str, id: i64) -> Value {
    common::get_json(base, &format!("/api/v1/tables/{id}")).await
}

/// Waits until table `id` is in `state`.
async fn until_state(base: &str, id: i64, state: &str) -> Value {
    common::get_json_until(
        base,
        &format!("/api/v1/tables/{id}"),
        &format!("table {id} {state}"),
        |t| t["state"] == state,
    )
    .await
}

/// Waits for the next SSE event of type `kind`, skipping others.
async fn next_of(sse: &mut Sse, kind: &str) -> Value {
    loop {
        let (msg, json) = sse.next_json().await;
        if msg.event.as_deref() == Some(kind) {
            return json;
        }
    }
}

async fn events_of(base: &str, kind: &str) -> Vec<Value> {
    common::all_events(base, 0)
        .await
        .into_iter()
        .filter(|e| e["type"] == kind)
        .collect()
}

#[tokio::test]
async fn a_table_is_reserved_at_19_45_seated_by_code_and_a_no_show_is_released_at_20_15() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 18:00 in Madrid (CET, +01:00) on Christmas Eve.
    let wall = Wall::manual(utc("2026-12-24T17:00:00Z"));
    let d = TestDaemon::start_at(config(dir.path()), wall.clone()).await;
    let (status, ana) = book(
        &d.base,
        json!({"name": "Ana", "party_size": 2, "at": "2026-12-24T20:00", "table": 1}),
    )
    .await;
    assert_eq!(status, 201, "{ana}");
    assert_eq!(ana["at"], "2026-12-24T20:00:00+01:00");
    assert_eq!(ana["duration"], "75m", "the default for a party of 2");
    assert_eq!(ana["status"], "booked");
    let (status, luis) = book(
        &d.base,
        json!({"name": "Luis", "party_size": 4, "at": "2026-12-24T20:00", "table": 2}),
    )
    .await;
    assert_eq!(status, 201, "{luis}");
    let mut sse = Sse::connect(&d.base, "/api/v1/stream", &[]).await;
    let (_, snapshot) = sse.next_json().await;
    assert_eq!(snapshot["reservations"].as_array().map(Vec::len), Some(2));

    wall.set(utc("2026-12-24T18:44:00Z"));
    assert_eq!(table(&d.base, 1).await["state"], "free");
    wall.set(utc("2026-12-24T18:45:00Z"));
    let held = next_of(&mut sse, "table.state").await;
    assert_eq!(held["data"]["to"], "reserved");
    until_state(&d.base, 1, "reserved").await;
    let t2 = until_state(&d.base, 2, "reserved").await;
    assert_eq!(t2["reservation"], luis["id"]);

    wall.set(utc("2026-12-24T18:58:00Z"));
    let code = ana["code"].as_str().expect("code").to_lowercase();
    let (status, seated) = check_in(&d.base, &code).await;
    assert_eq!(status, 200, "{seated}");
    assert_eq!(seated["reservation"]["status"], "seated");
    let event = next_of(&mut sse, "reservation.checked_in").await;
    assert_eq!(event["data"]["reservation"]["id"], ana["id"]);
    assert_eq!(event["actor"], "staff:staff");
    let t1 = until_state(&d.base, 1, "occupied").await;
    assert_eq!(t1["reservation"], ana["id"]);

    wall.set(utc("2026-12-24T19:14:59Z"));
    assert_eq!(table(&d.base, 2).await["state"], "reserved");
    wall.set(utc("2026-12-24T19:15:00Z"));
    let no_show = next_of(&mut sse, "reservation.no_show").await;
    assert_eq!(no_show["data"]["reservation"]["id"], luis["id"]);
    assert_eq!(no_show["actor"], "system");
    let released = next_of(&mut sse, "table.state").await;
    assert_eq!(released["data"]["to"], "free");
    assert_eq!(
        released["seq"].as_u64(),
        no_show["seq"].as_u64().map(|s| s + 1)
    );
    let t2 = until_state(&d.base, 2, "free").await;
    assert_eq!(t2["reservation"], Value::Null);
    // A checked-in reservation is no no-show, and nothing fires twice.
    wall.set(utc("2026-12-24T22:00:00Z"));
    let (status, _) = book(
        &d.base,
        json!({"name": "Eva", "party_size": 2, "at": "2026-12-25T21:00", "table": 3}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(events_of(&d.base, "reservation.no_show").await.len(), 1);
    assert_eq!(table(&d.base, 1).await["state"], "occupied");
    d.stop().await;
}

#[tokio::test]
async fn a_restart_between_the_hold_and_the_time_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wall = Wall::manual(utc("2026-12-24T17:00:00Z"));
    let d = TestDaemon::start_at(config(dir.path()), wall.clone()).await;
    let (_, ana) = book(
        &d.base,
        json!({"name": "Ana", "party_size": 2, "at": "2026-12-24T20:00", "table": 1}),
    )
    .await;
    let (_, luis) = book(
        &d.base,
        json!({"name": "Luis", "party_size": 2, "at": "2026-12-24T20:00", "table": 2}),
    )
    .await;
    wall.set(utc("2026-12-24T18:50:00Z"));
    until_state(&d.base, 1, "reserved").await;
    until_state(&d.base, 2, "reserved").await;
    d.stop().await;

    let d = TestDaemon::start_at(config(dir.path()), wall.clone()).await;
    assert_eq!(table(&d.base, 1).await["state"], "reserved");
    wall.set(utc("2026-12-24T18:58:00Z"));
    let (status, body) = check_in(&d.base, ana["code"].as_str().expect("code")).await;
    assert_eq!(status, 200, "{body}");
    until_state(&d.base, 1, "occupied").await;
    wall.set(utc("2026-12-24T19:15:00Z"));
    until_state(&d.base, 2, "free").await;
    let no_shows = events_of(&d.base, "reservation.no_show").await;
    assert_eq!(no_shows.len(), 1);
    assert_eq!(no_shows[0]["data"]["reservation"]["id"], luis["id"]);
    assert_eq!(events_of(&d.base, "reservation.checked_in").await.len(), 1);
    d.stop().await;
}

#[tokio::test]
async fn across_dst_a_reservation_in_the_gap_or_the_fold_fires_once_on_its_instant() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Saturday 28 March 2026, 12:00 in Madrid (CET).
    let wall = Wall::manual(utc("2026-03-28T11:00:00Z"));
    let d = TestDaemon::start_at(config(dir.path()), wall.clone()).await;
    // The evening of the change (CEST, +02:00) and 02:30, which does not
    // exist that night: it is read as 03:30 CEST.
    let (_, evening) = book(
        &d.base,
        json!({"name": "Ana", "party_size": 2, "at": "2026-03-29T20:00", "table": 1}),
    )
    .await;
    assert_eq!(evening["at"], "2026-03-29T20:00:00+02:00");
    let (_, gap) = book(
        &d.base,
        json!({"name": "Luis", "party_size": 2, "at": "2026-03-29T02:30", "table": 2}),
    )
    .await;
    assert_eq!(gap["at"], "2026-03-29T03:30:00+02:00");
    // 01:59:59 CET, then 03:00 CEST: the clock jumps an hour.
    wall.set(utc("2026-03-29T00:59:59Z"));
    assert_eq!(table(&d.base, 2).await["state"], "free");
    wall.set(utc("2026-03-29T01:15:00Z"));
    until_state(&d.base, 2, "reserved").await;
    wall.set(utc("2026-03-29T01:45:00Z"));
    until_state(&d.base, 2, "free").await;
    wall.set(utc("2026-03-29T17:45:00Z"));
    until_state(&d.base, 1, "reserved").await;
    wall.set(utc("2026-03-29T18:15:00Z"));
    until_state(&d.base, 1, "free").await;
    assert_eq!(events_of(&d.base, "reservation.no_show").await.len(), 2);

    // 25 October: 02:30 happens twice; the first (CEST) is taken.
    wall.set(utc("2026-10-24T12:00:00Z"));
    let (_, fold) = book(
        &d.base,
        json!({"name": "Eva", "party_size": 2, "at": "2026-10-25T02:30", "table": 3}),
    )
    .await;
    assert_eq!(fold["at"], "2026-10-25T02:30:00+02:00");
    wall.set(utc("2026-10-25T00:15:00Z"));
    until_state(&d.base, 3, "reserved").await;
    wall.set(utc("2026-10-25T00:45:00Z"));
    until_state(&d.base, 3, "free").await;
    // The second 02:30 (CET) and beyond: nothing fires again.
    wall.set(utc("2026-10-25T01:30:00Z"));
    wall.set(utc("2026-10-25T02:00:00Z"));
    let (status, _) = book(
        &d.base,
        json!({"name": "Sol", "party_size": 2, "at": "2026-10-26T21:00", "table": 4}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(events_of(&d.base, "reservation.no_show").await.len(), 3);
    assert_eq!(table(&d.base, 3).await["state"], "free");
    d.stop().await;
}

#[tokio::test]
async fn overlap_oversize_past_unknown_table_and_bad_codes_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wall = Wall::manual(utc("2026-12-24T17:00:00Z"));
    let d = TestDaemon::start_at(config(dir.path()), wall.clone()).await;
    let (status, _) = book(
        &d.base,
        json!({"name": "Ana", "party_size": 2, "at": "2026-12-24T20:00", "table": 1}),
    )
    .await;
    assert_eq!(status, 201);
    let before = common::get_json(&d.base, "/api/v1/snapshot").await;
    let cases = [
        (
            json!({"name": "B", "party_size": 2, "at": "2026-12-24T21:00", "table": 1}),
            409,
            "tables",
        ),
        (
            json!({"name": "B", "party_size": 5, "at": "2026-12-24T20:00", "table": 2}),
            422,
            "party_size",
        ),
        (
            json!({"name": "B", "party_size": 9, "at": "2026-12-24T20:00", "tables": [9, 10]}),
            422,
            "party_size",
        ),
        (
            json!({"name": "B", "party_size": 2, "at": "2026-12-24T17:59", "table": 2}),
            422,
            "at",
        ),
        (
            json!({"name": "B", "party_size": 2, "at": "2026-12-24T20:00", "table": 99}),
            422,
            "tables",
        ),
        (
            json!({"name": "B", "party_size": 2, "at": "2026-12-24T20:00", "tables": [1, 2]}),
            422,
            "tables",
        ),
        (
            json!({"name": " ", "party_size": 2, "at": "2026-12-24T20:00", "table": 2}),
            422,
            "name",
        ),
    ];
    for (body, want, field) in cases {
        let (status, answer) = book(&d.base, body.clone()).await;
        assert_eq!(status, want, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(field), "{body}: {message}");
    }
    let (status, answer) = check_in(&d.base, "ZZZZZZ").await;
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = check_in(&d.base, "0O1I").await;
    assert_eq!(status, 422, "{answer}");
    let after = common::get_json(&d.base, "/api/v1/snapshot").await;
    assert_eq!(after["seq"], before["seq"]);
    assert_eq!(after["tables"], before["tables"]);
    assert_eq!(after["reservations"], before["reservations"]);
    d.stop().await;
}

#[tokio::test]
async fn a_party_of_8_on_tables_9_and_10_is_held_and_seated_as_one_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wall = Wall::manual(utc("2026-12-24T17:00:00Z"));
    let d = TestDaemon::start_at(config(dir.path()), wall.clone()).await;
    let nine = table(&d.base, 9).await;
    assert_eq!(nine["joins"], json!([10]));
    assert_eq!(table(&d.base, 10).await["joins"], json!([9]));
    let (status, party) = book(
        &d.base,
        json!({"name": "Cena", "party_size": 8, "at": "2026-12-24T20:00", "tables": [9, 10]}),
    )
    .await;
    assert_eq!(status, 201, "{party}");
    let mut sse = Sse::connect(&d.base, "/api/v1/stream?types=table", &[]).await;
    let _snapshot = sse.next_json().await;
    wall.set(utc("2026-12-24T18:45:00Z"));
    let a = next_of(&mut sse, "table.state").await;
    let b = next_of(&mut sse, "table.state").await;
    assert_eq!(
        (a["table"].as_i64(), b["table"].as_i64()),
        (Some(9), Some(10))
    );
    assert_eq!(b["seq"].as_u64(), a["seq"].as_u64().map(|s| s + 1));
    assert_eq!(
        (&a["data"]["to"], &b["data"]["to"]),
        (&json!("reserved"), &json!("reserved"))
    );

    let (status, seated) = check_in(&d.base, party["code"].as_str().expect("code")).await;
    assert_eq!(status, 200, "{seated}");
    let seqs: Vec<u64> = seated["seqs"]
        .as_array()
        .expect("seqs")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert_eq!(seqs.len(), 3, "checked_in, then 9 and 10: {seated}");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let a = next_of(&mut sse, "table.state").await;
    let b = next_of(&mut sse, "table.state").await;
    assert_eq!(
        (a["seq"].as_u64(), b["seq"].as_u64()),
        (Some(seqs[1]), Some(seqs[2]))
    );
    assert_eq!(
        (&a["data"]["to"], &b["data"]["to"]),
        (&json!("occupied"), &json!("occupied"))
    );

    let qr = common::http()
        .get(format!(
            "{}/api/v1/reservations/{}/qr.svg",
            d.base, party["id"]
        ))
        .bearer_auth(STAFF)
        .send()
        .await
        .expect("qr");
    assert_eq!(qr.status().as_u16(), 200);
    assert!(qr.text().await.unwrap_or_default().contains("<svg"));
    d.stop().await;
}

#[tokio::test]
async fn a_join_set_on_one_table_through_the_api_shows_on_both_in_one_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path())).await;
    let res = common::http()
        .patch(format!("{}/api/v1/tables/1", d.base))
        .bearer_auth(common::ADMIN)
        .json(&json!({"joins": [2], "combined_seats": 3}))
        .send()
        .await
        .expect("patch");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(table(&d.base, 2).await["joins"], json!([1]));
    let updates = events_of(&d.base, "table.updated").await;
    // The seed's joins of 9 and 10 are updates too; these are 1's and 2's.
    let seqs: Vec<u64> = updates
        .iter()
        .filter(|e| e["table"] == 1 || e["table"] == 2)
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert_eq!(seqs.len(), 2);
    assert_eq!(seqs[1], seqs[0] + 1);
    let res = common::http()
        .patch(format!("{}/api/v1/tables/1", d.base))
        .bearer_auth(common::ADMIN)
        .json(&json!({"joins": [1]}))
        .send()
        .await
        .expect("patch");
    assert_eq!(res.status().as_u16(), 422, "a self-join is refused");
    d.stop().await;
}
