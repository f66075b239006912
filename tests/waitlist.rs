//! The walk-in waitlist over loopback, on a real SQLite file and the
//! daemon's clock walked by hand: parties in line, a table that frees is
//! offered to the right party (SSE and MQTT), seating it occupies the
//! table in the same batch, quoted and actual waits are kept, an offer
//! whose table is taken is withdrawn, and bad requests change nothing.

mod common;

use common::mqtt::{HOST, client};
use common::*;
use mesero::clock::Wall;
use serde_json::{Value, json};
use std::time::Duration;

const START: &str = "2026-12-04T20:00:00Z";

async fn send(
    method: reqwest::Method,
    base: &str,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn post(base: &str, path: &str, body: Value) -> (u16, Value) {
    send(reqwest::Method::POST, base, STAFF, path, Some(body)).await
}

async fn seats(base: &str, table: i64, seats: u32) {
    let path = format!("/api/v1/tables/{table}");
    let (status, body) = send(
        reqwest::Method::PATCH,
        base,
        "admin-token",
        &path,
        Some(json!({ "seats": seats })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn set(base: &str, table: i64, state: &str) {
    let body = json!({ "state": state }).to_string();
    let (status, answer) = put_state(base, Some(STAFF), table, &body).await;
    assert_eq!(status, 200, "{answer}");
}

/// The next SSE event of type `kind`, skipping others.
async fn next_of(sse: &mut Sse, kind: &str) -> Value {
    loop {
        let (msg, event) = sse.next_json().await;
        if msg.event.as_deref() == Some(kind) {
            return event;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freed_table_goes_to_the_right_party_who_is_then_seated_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wall = Wall::manual(mesero::clock::parse(START).expect("time"));
    let d = TestDaemon::start_at(config(dir.path(), &[]), wall.clone()).await;
    // Tables: 1 a two-top, 2 a four-top, 3 a six-top, 4 a four-top; all
    // seated.
    for (table, n) in [(1, 2), (2, 4), (3, 6), (4, 4)] {
        seats(&d.base, table, n).await;
        set(&d.base, table, "occupied").await;
    }
    let mut sse = Sse::connect(&d.base, "/api/v1/stream?types=waitlist,table.state", &[]).await;
    let (_, snapshot) = sse.next_json().await;
    assert!(snapshot["seq"].is_u64());
    let mut pager = client(d.mqtt, "pager", Some(HOST)).await;
    pager.subscribe("mesero/test/waitlist/ready").await;

    // Three parties: a six, a four, a two. The four's host typed a quote.
    let mut ids = Vec::new();
    for (name, size, quoted) in [("Ana", 6, None), ("Bea", 4, Some(25)), ("Carl", 2, None)] {
        let mut body = json!({ "name": name, "party_size": size, "phone": "+34 600 000 000" });
        if let Some(q) = quoted {
            body["quoted_minutes"] = json!(q);
        }
        let (status, party) = post(&d.base, "/api/v1/waitlist", body).await;
        assert_eq!(status, 201, "{party}");
        assert_eq!(party["status"], "waiting");
        assert_eq!(party["position"], ids.len() + 1);
        assert!(party["quote_p50_minutes"].as_u64().is_some(), "{party}");
        assert!(party["quote_p80_minutes"].as_u64() >= party["quote_p50_minutes"].as_u64());
        let added = next_of(&mut sse, "waitlist.added").await;
        assert_eq!(added["data"]["party"]["id"], party["id"]);
        assert_eq!(added["actor"], "staff:staff");
        ids.push(party["id"].as_i64().expect("id"));
    }
    let (ana, bea, carl) = (ids[0], ids[1], ids[2]);

    // Twenty minutes later the four-top 2 frees: Ana (six) does not fit,
    // Bea is next in line and fits.
    wall.advance(Duration::from_secs(20 * 60));
    set(&d.base, 2, "free").await;
    let ready = next_of(&mut sse, "waitlist.ready").await;
    assert_eq!(ready["data"]["party"]["id"], bea);
    assert_eq!(ready["data"]["party"]["offered"], json!([2]));
    assert_eq!(ready["data"]["party"]["status"], "notified");
    assert_eq!(ready["actor"], "system");
    let page = pager.json_on("mesero/test/waitlist/ready").await;
    assert_eq!(page["party"]["name"], "Bea");
    assert_eq!(page["party"]["phone"], "+34 600 000 000");
    assert_eq!(
        page["tables"],
        json!([{"id": 2, "number": "2", "zone": "salon", "seats": 4}])
    );
    assert_eq!(page["seq"], ready["seq"]);

    // Five minutes on, the host seats Bea at the offered table: the party
    // and the table change in one batch.
    wall.advance(Duration::from_secs(5 * 60));
    let path = format!("/api/v1/waitlist/{bea}/seat");
    let (status, seated) = post(&d.base, &path, json!({})).await;
    assert_eq!(status, 200, "{seated}");
    assert_eq!(seated["status"], "seated");
    assert_eq!(seated["tables"], json!([2]));
    assert_eq!(seated["quoted_minutes"], 25);
    assert_eq!(seated["waited_minutes"], 25);
    let event = next_of(&mut sse, "waitlist.seated").await;
    let (msg, table) = sse.next_json().await;
    assert_eq!(msg.event.as_deref(), Some("table.state"));
    assert_eq!(table["seq"].as_u64(), event["seq"].as_u64().map(|s| s + 1));
    assert_eq!(table["table"], 2);
    assert_eq!(table["data"]["to"], "occupied");
    assert_eq!(table["data"]["table"]["people"], 4);

    // The line is Ana then Carl; the evening's record keeps Bea's waits.
    let (_, line) = send(
        reqwest::Method::GET,
        &d.base,
        STAFF,
        "/api/v1/waitlist",
        None,
    )
    .await;
    let line: Vec<(i64, i64)> = line
        .as_array()
        .expect("list")
        .iter()
        .map(|p| {
            (
                p["id"].as_i64().unwrap_or(0),
                p["position"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(line, [(ana, 1), (carl, 2)]);
    let (_, record) = send(
        reqwest::Method::GET,
        &d.base,
        STAFF,
        &format!("/api/v1/waitlist?since={START}"),
        None,
    )
    .await;
    let bea_record = record
        .as_array()
        .and_then(|all| all.iter().find(|p| p["id"] == bea).cloned())
        .expect("Bea in the record");
    assert_eq!(bea_record["waited_minutes"], 25);
    assert_eq!(bea_record["quoted_minutes"], 25);
    assert_eq!(bea_record["added_at"], "2026-12-04T20:00:00.000Z");
    assert_eq!(bea_record["seated_at"], "2026-12-04T20:25:00.000Z");

    // The two-top frees and is offered to Carl; a walk-in sits down there
    // first: the offer is withdrawn and Carl waits again, in his place.
    set(&d.base, 1, "free").await;
    let ready = next_of(&mut sse, "waitlist.ready").await;
    assert_eq!(ready["data"]["party"]["id"], carl);
    set(&d.base, 1, "occupied").await;
    let withdrawn = next_of(&mut sse, "waitlist.updated").await;
    assert_eq!(withdrawn["data"]["party"]["id"], carl);
    assert_eq!(withdrawn["data"]["party"]["status"], "waiting");
    assert_eq!(withdrawn["data"]["party"]["offered"], json!([]));

    // Ana leaves.
    let (status, left) = send(
        reqwest::Method::DELETE,
        &d.base,
        STAFF,
        &format!("/api/v1/waitlist/{ana}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{left}");
    assert_eq!(left["status"], "left");
    assert_eq!(left["waited_minutes"], 25);
    d.stop().await;
}

/// (token, method, path, body, status, what the message names)
type Case = (
    &'static str,
    reqwest::Method,
    String,
    Option<Value>,
    u16,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_waitlist_requests_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    for table in 1..=4 {
        set(&d.base, table, "occupied").await;
    }
    let (status, party) = post(
        &d.base,
        "/api/v1/waitlist",
        json!({"name": "Dan", "party_size": 2}),
    )
    .await;
    assert_eq!(status, 201, "{party}");
    let dan = party["id"].as_i64().expect("id");
    let before = all_events(&d.base, 0).await.len();

    let cases: Vec<Case> = vec![
        (
            "viewer",
            reqwest::Method::POST,
            "/api/v1/waitlist".into(),
            Some(json!({"name": "X", "party_size": 2})),
            403,
            "",
        ),
        (
            STAFF,
            reqwest::Method::POST,
            "/api/v1/waitlist".into(),
            Some(json!({"name": "X", "party_size": 0})),
            422,
            "party_size",
        ),
        (
            STAFF,
            reqwest::Method::POST,
            "/api/v1/waitlist".into(),
            Some(json!({"name": "", "party_size": 2})),
            422,
            "name",
        ),
        (
            STAFF,
            reqwest::Method::POST,
            "/api/v1/waitlist".into(),
            Some(json!({"name": "X", "party_size": 2, "vip": true})),
            400,
            "vip",
        ),
        (
            STAFF,
            reqwest::Method::POST,
            "/api/v1/waitlist".into(),
            Some(json!({"name": "X", "party_size": 2, "quoted_minutes": 100000})),
            422,
            "quoted_minutes",
        ),
        (
            STAFF,
            reqwest::Method::PATCH,
            format!("/api/v1/waitlist/{dan}"),
            Some(json!({"notes": "a\u{1b}[2J"})),
            422,
            "notes",
        ),
        (
            STAFF,
            reqwest::Method::PATCH,
            "/api/v1/waitlist/999".into(),
            Some(json!({"name": "Y"})),
            404,
            "999",
        ),
        (
            STAFF,
            reqwest::Method::POST,
            format!("/api/v1/waitlist/{dan}/seat"),
            Some(json!({})),
            422,
            "tables",
        ),
        (
            STAFF,
            reqwest::Method::POST,
            format!("/api/v1/waitlist/{dan}/seat"),
            Some(json!({"tables": [1]})),
            409,
            "tables",
        ),
        (
            STAFF,
            reqwest::Method::POST,
            format!("/api/v1/waitlist/{dan}/seat"),
            Some(json!({"tables": [77]})),
            404,
            "77",
        ),
        (
            STAFF,
            reqwest::Method::DELETE,
            "/api/v1/waitlist/abc".into(),
            None,
            400,
            "abc",
        ),
    ];
    for (token, method, path, body, want, names) in cases {
        let token = if token == "viewer" {
            "viewer-token"
        } else {
            token
        };
        let (status, answer) = send(method.clone(), &d.base, token, &path, body).await;
        assert_eq!(status, want, "{method} {path}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(names),
            "{method} {path}: {message:?} names {names:?}"
        );
    }
    assert_eq!(
        all_events(&d.base, 0).await.len(),
        before,
        "nothing recorded"
    );
    let (_, line) = send(
        reqwest::Method::GET,
        &d.base,
        STAFF,
        "/api/v1/waitlist",
        None,
    )
    .await;
    assert_eq!(line.as_array().map(Vec::len), Some(1));
    assert_eq!(line[0]["name"], "Dan");
    let tables = get_json(&d.base, "/api/v1/tables").await;
    assert!(
        tables
            .as_array()
            .expect("tables")
            .iter()
            .all(|t| t["state"] == "occupied")
    );

    // A seated party cannot be seated or removed again.
    set(&d.base, 2, "free").await;
    let path = format!("/api/v1/waitlist/{dan}/seat");
    let (status, seated) = post(&d.base, &path, json!({"tables": [2]})).await;
    assert_eq!(status, 200, "{seated}");
    let (status, again) = post(&d.base, &path, json!({"tables": [3]})).await;
    assert_eq!(status, 409, "{again}");
    d.stop().await;
}

/// A party too big for any one table is offered a combination once all
/// its tables are free, and seated at both in one batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_party_is_offered_and_seated_at_joined_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    for table in 1..=4 {
        set(&d.base, table, "occupied").await;
    }
    let (status, body) = send(
        reqwest::Method::PATCH,
        &d.base,
        "admin-token",
        "/api/v1/tables/3",
        Some(json!({ "joins": [4] })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut sse = Sse::connect(&d.base, "/api/v1/stream?types=waitlist,table.state", &[]).await;
    sse.next_json().await;
    let (status, party) = post(
        &d.base,
        "/api/v1/waitlist",
        json!({"name": "Eve", "party_size": 8}),
    )
    .await;
    assert_eq!(status, 201, "{party}");
    let eve = party["id"].as_i64().expect("id");

    // One of the two frees: nothing yet; both: the pair is offered.
    set(&d.base, 3, "free").await;
    set(&d.base, 4, "free").await;
    let ready = next_of(&mut sse, "waitlist.ready").await;
    assert_eq!(ready["data"]["party"]["offered"], json!([3, 4]));
    let (status, seated) = post(&d.base, &format!("/api/v1/waitlist/{eve}/seat"), json!({})).await;
    assert_eq!(status, 200, "{seated}");
    assert_eq!(seated["tables"], json!([3, 4]));
    let event = next_of(&mut sse, "waitlist.seated").await;
    let seq = event["seq"].as_u64().expect("seq");
    for (i, table) in [3, 4].into_iter().enumerate() {
        let (msg, change) = sse.next_json().await;
        assert_eq!(msg.event.as_deref(), Some("table.state"));
        assert_eq!(change["seq"].as_u64(), Some(seq + 1 + i as u64));
        assert_eq!(change["table"], table);
        assert_eq!(change["data"]["to"], "occupied");
    }
    // Tables that are not joined are not one place to seat a party.
    let (status, party) = post(
        &d.base,
        "/api/v1/waitlist",
        json!({"name": "Fay", "party_size": 6}),
    )
    .await;
    assert_eq!(status, 201, "{party}");
    set(&d.base, 1, "free").await;
    set(&d.base, 2, "free").await;
    let path = format!("/api/v1/waitlist/{}/seat", party["id"]);
    let (status, refused) = post(&d.base, &path, json!({"tables": [1, 2]})).await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("tables")
    );
    d.stop().await;
}

/// A free table booked within the turn time is not given to a walk-in,
/// and an offer of it is withdrawn once a reservation comes that close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_booked_soon_is_not_offered_to_walk_ins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wall = Wall::manual(mesero::clock::parse(START).expect("time"));
    let d = TestDaemon::start_at(config(dir.path(), &[]), wall.clone()).await;
    for table in 1..=4 {
        set(&d.base, table, "occupied").await;
    }
    let mut sse = Sse::connect(&d.base, "/api/v1/stream?types=waitlist", &[]).await;
    sse.next_json().await;
    // Table 1 is booked at 20:40, within the 75-minute turn.
    let booking = json!({"name": "Res", "party_size": 2, "at": "2026-12-04T20:40:00Z", "table": 1});
    let (status, body) = post(&d.base, "/api/v1/reservations", booking).await;
    assert_eq!(status, 201, "{body}");
    let (status, party) = post(
        &d.base,
        "/api/v1/waitlist",
        json!({"name": "Gil", "party_size": 2}),
    )
    .await;
    assert_eq!(status, 201, "{party}");
    next_of(&mut sse, "waitlist.added").await;

    // Table 1 frees first: not offered; then table 2: offered.
    set(&d.base, 1, "free").await;
    set(&d.base, 2, "free").await;
    let ready = next_of(&mut sse, "waitlist.ready").await;
    assert_eq!(ready["data"]["party"]["offered"], json!([2]));

    // A booking made for table 2 at 21:00 takes the offer back.
    let booking =
        json!({"name": "Late", "party_size": 2, "at": "2026-12-04T21:00:00Z", "table": 2});
    let (status, body) = post(&d.base, "/api/v1/reservations", booking).await;
    assert_eq!(status, 201, "{body}");
    let withdrawn = next_of(&mut sse, "waitlist.updated").await;
    assert_eq!(withdrawn["data"]["party"]["status"], "waiting");
    d.stop().await;
}
