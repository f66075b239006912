//! Turn-time predictions and learned wait quotes (issue 13), end to end:
//! a generated 60-day history with known lognormal turn times is imported
//! into a real SQLite file, the daemon learns from it, and what tablets
//! and hosts see is checked over real HTTP and SSE on a manual clock.

mod common;

use common::{PATIENCE, STAFF, Sse, TestDaemon, config, get_json, get_json_until, http, put_state};
use mesero::clock::Wall;
use mesero::domain::{Actor, Layout, PartySizeSource, Visit, VisitOrigin};
use mesero::hub::Hub;
use mesero::metrics::Metrics;
use mesero::store::{Change, NewTable, Store};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Monday 2026-11-30, 19:00 UTC: a weekday dinner (the site is on UTC).
const EVENING: &str = "2026-11-30T19:00:00Z";
/// The lognormal's σ of every party size.
const SIGMA: f64 = 0.35;

fn at(s: &str) -> SystemTime {
    mesero::clock::parse(s).expect("time")
}

/// The true median turn time, in minutes, of each generated party size.
fn median_minutes(size: u32) -> f64 {
    match size {
        2 => 50.0,
        4 => 65.0,
        _ => 80.0,
    }
}

/// splitmix64, seeded: the test's only source of randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    /// A standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
    /// A lognormal turn of a party of `size`.
    fn turn(&mut self, size: u32) -> Duration {
        let minutes = median_minutes(size) * (SIGMA * self.normal()).exp();
        Duration::from_secs_f64(minutes * 60.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Φ, the standard normal CDF (Abramowitz–Stegun 7.1.26, error < 2e-7).
fn phi(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// Φ⁻¹ by bisection.
fn phi_inv(p: f64) -> f64 {
    let (mut lo, mut hi) = (-10.0, 10.0);
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if phi(mid) < p { lo = mid } else { hi = mid }
    }
    (lo + hi) / 2.0
}

/// The true time (minutes since seating) by which a party of `size` still
/// seated after `elapsed` minutes has left with probability `q`.
fn true_quantile(size: u32, elapsed: f64, q: f64) -> f64 {
    let mu = median_minutes(size).ln();
    let s = |t: f64| {
        if t <= 0.0 {
            1.0
        } else {
            1.0 - phi((t.ln() - mu) / SIGMA)
        }
    };
    let left = (1.0 - q) * s(elapsed);
    (mu + SIGMA * phi_inv(1.0 - left)).exp()
}

/// 60 days of visits before `EVENING`: each day a lunch and a dinner
/// service with parties of 2, 4 and 6.
fn history(rng: &mut Rng) -> Vec<Visit> {
    let day0 = at(EVENING) - Duration::from_secs(60 * 86_400);
    let midnight = day0 - Duration::from_secs(19 * 3600);
    let mut visits = Vec::new();
    for day in 0..60u64 {
        let base = midnight + Duration::from_secs(day * 86_400);
        for size in [2, 4, 6] {
            for (start_h, count) in [(12u64, 8), (19, 10)] {
                for _ in 0..count {
                    let seated = base + Duration::from_secs(start_h * 3600 + rng.below(2 * 3600));
                    visits.push(Visit {
                        id: 0,
                        tables: vec![1],
                        party_size: Some(size),
                        party_size_source: Some(PartySizeSource::Import),
                        seated_at: mesero::clock::format(seated),
                        left_at: Some(mesero::clock::format(seated + rng.turn(size))),
                        origin: VisitOrigin::Import,
                    });
                }
            }
        }
    }
    visits
}

/// The fixture on UTC with `turn_time` 75 min.
fn site(dir: &std::path::Path) -> mesero::config::Config {
    config(
        dir,
        &[
            ("MESERO_SITE_TIMEZONE", "UTC"),
            ("MESERO_WAITLIST_TURN_TIME", "75m"),
        ],
    )
}

/// Seeds the database in `dir` before the daemon starts (the way an
/// import from another system arrives): the history and a floor plan of
/// `floor` (id, seats) instead of the fixture's tables.
async fn seed(dir: &std::path::Path, floor: &[(i64, u32)], visits: Vec<Visit>) {
    let config = site(dir);
    // Before the evening: the writer never stamps an event earlier than
    // the last one.
    let wall = Wall::manual(at(EVENING) - Duration::from_secs(86_400));
    let hub = Hub::new(64, Arc::new(Metrics::default()));
    let store = Store::open_at(&config, hub, Arc::new(Metrics::default()), wall).expect("open");
    let mut changes: Vec<Change> = (1..=4).map(|id| Change::DeleteTable { id }).collect();
    changes.extend(floor.iter().map(|&(id, seats)| {
        Change::CreateTable(NewTable {
            id: Some(id),
            number: id.to_string(),
            zone: "salon".into(),
            seats,
            layout: Layout::default(),
            joins: Vec::new(),
            combined_seats: None,
        })
    }));
    store
        .apply(Change::All(changes), Actor::System)
        .await
        .expect("floor plan");
    store
        .apply(Change::ImportVisits(visits), Actor::System)
        .await
        .expect("import");
    store.shutdown().await;
}

async fn post(base: &str, path: &str, body: Value) -> (u16, Value) {
    let res = http()
        .post(format!("{base}{path}"))
        .bearer_auth(STAFF)
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn get_staff(base: &str, path: &str) -> (u16, Value) {
    let res = http()
        .get(format!("{base}{path}"))
        .bearer_auth(STAFF)
        .send()
        .await
        .expect("GET");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Minutes from `since` to the RFC 3339 time in `field` of `table`.
fn minutes_to(table: &Value, field: &str) -> f64 {
    let since = at(table["since"].as_str().expect("since"));
    let end = at(table[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {table}")));
    end.duration_since(since)
        .expect("after since")
        .as_secs_f64()
        / 60.0
}

/// Waits until the daemon has learned (the first fit runs at start).
async fn until_fitted(base: &str, table: i64) -> Value {
    get_json_until(
        base,
        &format!("/api/v1/tables/{table}"),
        "a prediction",
        |t| !t["expected_free_at"].is_null(),
    )
    .await
}

/// Seats a party of `size` at `table` through the waitlist (so the table
/// knows its party size).
async fn seat_party(base: &str, size: u32, table: i64) -> Value {
    let (status, party) = post(
        base,
        "/api/v1/waitlist",
        json!({"name": "P", "party_size": size}),
    )
    .await;
    assert_eq!(status, 201, "{party}");
    let id = party["id"].as_i64().expect("id");
    let (status, seated) = post(
        base,
        &format!("/api/v1/waitlist/{id}/seat"),
        json!({"tables": [table]}),
    )
    .await;
    assert_eq!(status, 200, "{seated}");
    seated
}

fn within(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 0.10 * want,
        "{what}: predicted {got:.1} min, true {want:.1} min"
    );
}

#[tokio::test]
async fn predictions_match_the_true_lognormal_turn_times_and_are_conditional_on_time_seated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(13);
    seed(
        dir.path(),
        &[(1, 2), (2, 4), (3, 6), (4, 4)],
        history(&mut rng),
    )
    .await;
    let wall = Wall::manual(at(EVENING));
    let d = TestDaemon::start_at(site(dir.path()), wall.clone()).await;
    // A free table predicts nothing, but carries the fields.
    let free = get_json(&d.base, "/api/v1/tables/1").await;
    assert_eq!(free["expected_free_at"], Value::Null, "{free}");
    assert_eq!(free["expected_free_p80"], Value::Null);
    assert_eq!(free["predicted_from"], 0);

    // The first fit runs at start: wait for it on a table seated by staff.
    put_state(&d.base, Some(STAFF), 4, r#"{"state": "occupied"}"#).await;
    until_fitted(&d.base, 4).await;
    // A staff seating's party size is what the four-top predicts from.
    let (status, body) = put_state(
        &d.base,
        Some(STAFF),
        4,
        r#"{"state": "occupied", "party_size": 2}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    within(
        minutes_to(
            &get_json(&d.base, "/api/v1/tables/4").await,
            "expected_free_at",
        ),
        true_quantile(2, 0.0, 0.5),
        "P50 of a staff-seated 2 at a four-top",
    );
    put_state(&d.base, Some(STAFF), 4, r#"{"state": "free"}"#).await;
    let mut stream = Sse::connect(&d.base, "/api/v1/stream?types=table", &[]).await;
    for (size, table) in [(2, 1), (4, 2), (6, 3)] {
        seat_party(&d.base, size, table).await;
        let t = until_fitted(&d.base, table).await;
        within(
            minutes_to(&t, "expected_free_at"),
            true_quantile(size, 0.0, 0.5),
            &format!("P50 of {size}"),
        );
        within(
            minutes_to(&t, "expected_free_p80"),
            true_quantile(size, 0.0, 0.8),
            &format!("P80 of {size}"),
        );
        assert!(
            t["predicted_from"].as_u64().expect("predicted_from") > 100,
            "{t}"
        );
    }
    // The stream's table event carries the same prediction.
    let event = loop {
        let msg = tokio::time::timeout(PATIENCE, stream.rx.recv())
            .await
            .expect("an event in time")
            .expect("stream open");
        if msg.event.as_deref() == Some("table.state") {
            let v: Value = serde_json::from_str(&msg.data).expect("json");
            if v["data"]["table"]["id"] == 1 {
                break v;
            }
        }
    };
    within(
        minutes_to(&event["data"]["table"], "expected_free_at"),
        true_quantile(2, 0.0, 0.5),
        "P50 in the event",
    );
    // The snapshot of a new stream client predicts as of now.
    let mut fresh = Sse::connect(&d.base, "/api/v1/stream", &[]).await;
    let snap = tokio::time::timeout(PATIENCE, fresh.rx.recv())
        .await
        .expect("snapshot")
        .expect("open");
    assert_eq!(snap.event.as_deref(), Some("snapshot"));
    let snap: Value = serde_json::from_str(&snap.data).expect("json");
    let t3 = snap["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["id"] == 3)
        .expect("table 3")
        .clone();
    within(
        minutes_to(&t3, "expected_free_at"),
        true_quantile(6, 0.0, 0.5),
        "P50 in the snapshot",
    );
    let rest = get_json(&d.base, "/api/v1/snapshot").await;
    assert!(
        rest["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .any(|t| t["id"] == 2 && !t["expected_free_at"].is_null())
    );

    // An hour later the four is still there: the median of what is left.
    wall.advance(Duration::from_secs(60 * 60));
    let p = get_json(&d.base, "/api/v1/predictions").await;
    assert_eq!(p["at"], mesero::clock::format(wall.now()));
    let rows = p["tables"].as_array().expect("rows");
    assert_eq!(rows.len(), 3, "{p}");
    let four = rows.iter().find(|r| r["table"] == 2).expect("table 2");
    assert_eq!(four["group"], "party 3-4 / dinner / weekday");
    let since = at(four["occupied_since"].as_str().expect("since"));
    let p50 = at(four["expected_free_at"].as_str().expect("p50"));
    let conditional = p50.duration_since(since).expect("later").as_secs_f64() / 60.0;
    within(
        conditional,
        true_quantile(4, 60.0, 0.5),
        "the median after 60 min seated",
    );
    assert!(p50 > wall.now());
    d.stop().await;
}

#[tokio::test]
async fn a_host_override_is_recorded_and_without_history_the_baseline_quotes() {
    let dir = tempfile::tempdir().expect("tempdir");
    seed(dir.path(), &[(1, 4)], Vec::new()).await;
    let d = TestDaemon::start_at(site(dir.path()), Wall::manual(at(EVENING))).await;
    put_state(&d.base, Some(STAFF), 1, r#"{"state": "occupied"}"#).await;
    let (_, a) = post(
        &d.base,
        "/api/v1/waitlist",
        json!({"name": "A", "party_size": 4}),
    )
    .await;
    assert_eq!(a["quote_source"], "baseline", "{a}");
    assert_eq!(a["quote_p50_minutes"], 75);
    assert_eq!(a["baseline_minutes"], 75);
    assert_eq!(a["quoted_minutes"], Value::Null);
    let (_, b) = post(
        &d.base,
        "/api/v1/waitlist",
        json!({"name": "B", "party_size": 4, "quoted_minutes": 90}),
    )
    .await;
    assert_eq!(b["quote_source"], "host", "{b}");
    assert_eq!(b["quoted_minutes"], 90);
    assert_eq!(b["quote_p50_minutes"], 150, "one round behind A");
    // Clearing the override goes back to the daemon's basis.
    let res = http()
        .patch(format!("{}/api/v1/waitlist/{}", d.base, b["id"]))
        .bearer_auth(STAFF)
        .json(&json!({"quoted_minutes": null}))
        .send()
        .await
        .expect("PATCH");
    let b: Value = res.json().await.expect("json");
    assert_eq!(b["quote_source"], "baseline", "{b}");
    // No history, no prediction.
    let t = get_json(&d.base, "/api/v1/tables/1").await;
    assert_eq!(
        (t["expected_free_at"].clone(), t["predicted_from"].clone()),
        (Value::Null, json!(0))
    );
    d.stop().await;
}

#[tokio::test]
async fn a_new_party_size_is_quoted_again_at_the_same_place_in_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    seed(dir.path(), &[(1, 4), (2, 6)], Vec::new()).await;
    let d = TestDaemon::start_at(site(dir.path()), Wall::manual(at(EVENING))).await;
    put_state(&d.base, Some(STAFF), 2, r#"{"state": "occupied"}"#).await;
    let (_, a) = post(
        &d.base,
        "/api/v1/waitlist",
        json!({"name": "A", "party_size": 4}),
    )
    .await;
    assert_eq!(
        (
            a["quote_p50_minutes"].clone(),
            a["baseline_minutes"].clone()
        ),
        (json!(0), json!(0)),
        "the four-top is free: {a}"
    );
    let (_, b) = post(
        &d.base,
        "/api/v1/waitlist",
        json!({"name": "B", "party_size": 2}),
    )
    .await;
    // A is six after all: only the occupied six-top seats it now.
    let patch = |id: &Value, body: Value| {
        let url = format!("{}/api/v1/waitlist/{id}", d.base);
        async move {
            let res = http()
                .patch(url)
                .bearer_auth(STAFF)
                .json(&body)
                .send()
                .await
                .expect("PATCH");
            res.json::<Value>().await.expect("json")
        }
    };
    let a = patch(&a["id"], json!({"party_size": 6})).await;
    assert_eq!(
        (
            a["quote_p50_minutes"].clone(),
            a["quote_p80_minutes"].clone(),
            a["baseline_minutes"].clone(),
            a["quote_source"].clone()
        ),
        (json!(75), json!(100), json!(75), json!("baseline")),
        "{a}"
    );
    // B's quote stands when its size does not change.
    let same = patch(&b["id"], json!({"party_size": 2, "name": "Bea"})).await;
    assert_eq!(same["quote_p50_minutes"], b["quote_p50_minutes"], "{same}");
    d.stop().await;
}

/// A walk-in of the replayed evening.
struct Guest {
    id: i64,
    size: u32,
}

/// Imports the history of seed `evening`, replays one evening of walk-ins on it
/// (seated the way the daemon offers tables) and returns the daemon's
/// quote report of that evening.
async fn replayed_evening(evening: u64) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(evening);
    let mut floor: Vec<(i64, u32)> = (1..=6).map(|id| (id, 2)).collect();
    floor.extend((7..=12).map(|id| (id, 4)));
    floor.extend((13..=15).map(|id| (id, 6)));
    seed(dir.path(), &floor, history(&mut rng)).await;
    let start = at(EVENING) - Duration::from_secs(3600);
    let wall = Wall::manual(start);
    let d = TestDaemon::start_at(site(dir.path()), wall.clone()).await;
    // The model is ready once a prediction shows (seat, look, free again).
    put_state(&d.base, Some(STAFF), 15, r#"{"state": "occupied"}"#).await;
    until_fitted(&d.base, 15).await;
    put_state(&d.base, Some(STAFF), 15, r#"{"state": "free"}"#).await;

    let mut arrivals: Vec<(u64, u32)> = Vec::new();
    let mut t = 0.0;
    loop {
        t += -3.0 * rng.unit().ln();
        if t >= 240.0 {
            break;
        }
        let size = match rng.below(20) {
            0..=9 => 2,
            10..=16 => 4,
            _ => 6,
        };
        arrivals.push((t as u64, size));
    }
    let mut line: Vec<Guest> = Vec::new();
    // Table id → the minute its party leaves.
    let mut leaves: Vec<(i64, u64)> = Vec::new();
    let mut minute = 0u64;
    while minute < 240 || !line.is_empty() {
        for (table, _) in leaves.iter().filter(|(_, m)| *m <= minute) {
            let (status, body) =
                put_state(&d.base, Some(STAFF), *table, r#"{"state": "free"}"#).await;
            assert_eq!(status, 200, "{body}");
        }
        leaves.retain(|(_, m)| *m > minute);
        for &(_, size) in arrivals.iter().filter(|(m, _)| *m == minute) {
            let (status, party) = post(
                &d.base,
                "/api/v1/waitlist",
                json!({"name": "W", "party_size": size}),
            )
            .await;
            assert_eq!(status, 201, "{party}");
            line.push(Guest {
                id: party["id"].as_i64().expect("id"),
                size,
            });
        }
        // Seat as `waitlist::offers` would: in order, the smallest free fit.
        let mut i = 0;
        while i < line.len() {
            let free = floor
                .iter()
                .filter(|(id, seats)| {
                    *seats >= line[i].size && !leaves.iter().any(|(t, _)| t == id)
                })
                .min_by_key(|(_, seats)| *seats)
                .map(|(id, _)| *id);
            let Some(table) = free else {
                i += 1;
                continue;
            };
            let guest = line.remove(i);
            let path = format!("/api/v1/waitlist/{}/seat", guest.id);
            let (status, body) = post(&d.base, &path, json!({"tables": [table]})).await;
            assert_eq!(status, 200, "{body}");
            let turn = rng.turn(guest.size).as_secs().div_ceil(60).max(1);
            leaves.push((table, minute + turn));
        }
        minute += 1;
        wall.advance(Duration::from_secs(60));
    }
    let (status, score) = get_staff(
        &d.base,
        "/api/v1/analytics/quotes?from=2026-11-30&to=2026-11-30",
    )
    .await;
    assert_eq!(status, 200, "{score}");
    let parties = score["parties"].as_u64().expect("parties");
    assert_eq!(parties as usize, arrivals.len(), "{score}");
    d.stop().await;
    score
}

/// Issue 13, test 3. One evening's waits are strongly correlated (every
/// party in a long line waits on the same few turns), so its P80 coverage
/// swings with that evening's luck: measured 0.93 on seed 13 (its turns
/// ran 5 % under the true medians), 0.80 on 14, 0.84 on 15, 0.73 to 0.89
/// on seeds 1 to 6. Coverage is therefore judged over three evenings;
/// each must beat the baseline on its own.
#[tokio::test]
async fn on_a_replayed_evening_the_learned_quotes_beat_the_fixed_turn_time() {
    let (mut parties, mut covered) = (0.0, 0.0);
    for seed in [13, 14, 15] {
        let score = replayed_evening(seed).await;
        let n = score["parties"].as_f64().expect("parties");
        let model = score["model"]["mae_minutes"].as_f64().expect("model mae");
        let baseline = score["baseline"]["mae_minutes"]
            .as_f64()
            .expect("baseline mae");
        let coverage = score["model"]["p80_coverage"].as_f64().expect("coverage");
        eprintln!("replayed evening {seed}: {score}");
        assert!(
            model <= 0.7 * baseline,
            "seed {seed}: model MAE {model:.1} vs baseline {baseline:.1}: {score}"
        );
        parties += n;
        covered += coverage * n;
    }
    let coverage = covered / parties;
    assert!(
        (0.7..=0.9).contains(&coverage),
        "P80 coverage over the evenings {coverage:.2}"
    );
}

#[tokio::test]
async fn the_quote_report_scores_seated_parties_by_local_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    seed(dir.path(), &[(1, 4)], Vec::new()).await;
    let wall = Wall::manual(at(EVENING));
    let d = TestDaemon::start_at(site(dir.path()), wall.clone()).await;
    put_state(&d.base, Some(STAFF), 1, r#"{"state": "occupied"}"#).await;
    // A: quoted 75 (P80 100), seated after 40: off by 35, covered.
    let (_, a) = post(
        &d.base,
        "/api/v1/waitlist",
        json!({"name": "A", "party_size": 4}),
    )
    .await;
    assert_eq!(
        (
            a["quote_p50_minutes"].clone(),
            a["quote_p80_minutes"].clone()
        ),
        (json!(75), json!(100))
    );
    // C leaves without a table: not scored.
    let (_, c) = post(
        &d.base,
        "/api/v1/waitlist",
        json!({"name": "C", "party_size": 2}),
    )
    .await;
    let res = http()
        .delete(format!("{}/api/v1/waitlist/{}", d.base, c["id"]))
        .bearer_auth(STAFF)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(res.status().as_u16(), 200);
    wall.advance(Duration::from_secs(40 * 60));
    put_state(&d.base, Some(STAFF), 1, r#"{"state": "free"}"#).await;
    let (status, seated) = post(
        &d.base,
        &format!("/api/v1/waitlist/{}/seat", a["id"]),
        json!({"tables": [1]}),
    )
    .await;
    assert_eq!(
        (status, seated["waited_minutes"].clone()),
        (200, json!(40)),
        "{seated}"
    );
    // B: quoted 75 behind A's fresh seating, seated after 90: under by 15, covered.
    let (_, b) = post(
        &d.base,
        "/api/v1/waitlist",
        json!({"name": "B", "party_size": 4}),
    )
    .await;
    assert_eq!(b["quote_p50_minutes"], 75, "{b}");
    wall.advance(Duration::from_secs(90 * 60));
    put_state(&d.base, Some(STAFF), 1, r#"{"state": "free"}"#).await;
    post(
        &d.base,
        &format!("/api/v1/waitlist/{}/seat", b["id"]),
        json!({"tables": [1]}),
    )
    .await;

    let (status, score) = get_staff(
        &d.base,
        "/api/v1/analytics/quotes?from=2026-11-30&to=2026-11-30",
    )
    .await;
    assert_eq!(status, 200, "{score}");
    assert_eq!(
        score,
        json!({
            "from": "2026-11-30", "to": "2026-11-30", "parties": 2,
            "model": {"mae_minutes": 25.0, "under_quote_share": 0.5, "p80_coverage": 1.0},
            "baseline": {"mae_minutes": 25.0, "under_quote_share": 0.5, "p80_coverage": null},
            "by_day": [{"date": "2026-11-30", "parties": 2, "model_mae_minutes": 25.0, "baseline_mae_minutes": 25.0}]
        })
    );
    // The default range ends today and includes them; another day has none.
    let (_, default) = get_staff(&d.base, "/api/v1/analytics/quotes").await;
    assert_eq!(
        (default["to"].clone(), default["parties"].clone()),
        (json!("2026-11-30"), json!(2))
    );
    let (_, other) = get_staff(
        &d.base,
        "/api/v1/analytics/quotes?from=2026-11-29&to=2026-11-29",
    )
    .await;
    assert_eq!(other["parties"], 0);
    assert_eq!(other["model"]["mae_minutes"], Value::Null);
    // Bad ranges name the field; viewers may not read it.
    let (status, err) = get_staff(
        &d.base,
        "/api/v1/analytics/quotes?from=2026-12-01&to=2026-11-30",
    )
    .await;
    assert_eq!(status, 422, "{err}");
    let (status, err) = get_staff(&d.base, "/api/v1/analytics/quotes?from=yesterday").await;
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"]
            .as_str()
            .expect("message")
            .starts_with("from:"),
        "{err}"
    );
    let res = http()
        .get(format!("{}/api/v1/analytics/quotes", d.base))
        .bearer_auth(common::VIEWER)
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status().as_u16(), 403);
    d.stop().await;
}
