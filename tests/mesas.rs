//! The "mesas" compatibility API as an existing React `MesasGrid` page
//! uses it: served from another origin (its dev server on :4321), reading
//! `GET /api/v1/mesas` and following `GET /api/v1/mesas/stream` with
//! EventSource `onmessage` (`data.type === "mesa_update"`), changing a
//! table with `PUT /api/v1/mesas/{id}`. Real HTTP over loopback, a real
//! SQLite file.

mod common;

use common::*;
use mesero::sse::SseMessage;
use serde_json::{Value, json};

const PAGE: &str = "http://localhost:4321";

fn cors_daemon_config(dir: &std::path::Path) -> mesero::config::Config {
    config_edited(
        dir,
        &[("[http]", &format!("cors_origins = [{PAGE:?}]"))],
        &[],
    )
}

/// What the page's `onmessage` handler gets: only messages without an
/// `event:` field reach it, and it parses `event.data` as JSON.
async fn on_message(sse: &mut Sse) -> Value {
    loop {
        let msg: SseMessage = sse.next().await.expect("stream open");
        if msg.event.is_none() {
            assert_eq!(msg.id, None, "the old backend sent no ids");
            return serde_json::from_str(&msg.data).expect("data is JSON");
        }
    }
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn estados(update: &Value) -> Vec<(i64, String)> {
    update["data"]
        .as_array()
        .expect("data is the list of mesas")
        .iter()
        .map(|m| {
            (
                m["id_mesa"].as_i64().expect("id_mesa"),
                m["estado"].as_str().expect("estado").to_string(),
            )
        })
        .collect()
}

fn all(state: &str, except: Option<(i64, &str)>) -> Vec<(i64, String)> {
    (1..=4)
        .map(|id| match except {
            Some((t, s)) if t == id => (id, s.to_string()),
            _ => (id, state.to_string()),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mesas_grid_page_on_another_origin_gets_the_tables_and_follows_main_api_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(cors_daemon_config(dir.path())).await;

    // loadMesas(): a cross-origin GET, no token (anonymous is viewer).
    let res = http()
        .get(format!("{}/api/v1/mesas", d.base))
        .header("origin", PAGE)
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), 200);
    assert_eq!(header(res.headers(), "access-control-allow-origin"), PAGE);
    let mesas: Value = res.json().await.expect("json");
    assert_eq!(
        mesas[0],
        json!({
            "id_mesa": 1, "numero_mesa": 1, "estado": "disponible", "id_tipo_mesa": 4,
            "tipo_mesa": {"id_tipo_mesa": 4, "descripcion": "Mesa para 4 personas", "cantidad_sillas": 4},
        })
    );
    assert_eq!(mesas.as_array().map(Vec::len), Some(4));

    // An origin that is not configured gets no CORS grant.
    let res = http()
        .get(format!("{}/api/v1/mesas", d.base))
        .header("origin", "http://evil.example:4321")
        .send()
        .await
        .expect("GET");
    assert_eq!(header(res.headers(), "access-control-allow-origin"), "");

    // new EventSource(`${API_BASE}/api/v1/mesas/stream`)
    let mut sse = Sse::connect(&d.base, "/api/v1/mesas/stream", &[("origin", PAGE)]).await;
    assert_eq!(sse.status, 200);
    assert_eq!(header(&sse.headers, "access-control-allow-origin"), PAGE);
    assert!(header(&sse.headers, "content-type").starts_with("text/event-stream"));
    let connected = on_message(&mut sse).await;
    assert_eq!(connected["type"], "connected");
    assert!(connected["message"].is_string(), "{connected}");
    let first = on_message(&mut sse).await;
    assert_eq!(first["type"], "mesa_update");
    assert_eq!(estados(&first), all("disponible", None));

    // A waiter changes table 3 through the main API.
    let (status, body) = put_state(&d.base, Some(STAFF), 3, r#"{"state":"occupied"}"#).await;
    assert_eq!(status, 200, "{body}");
    let update = on_message(&mut sse).await;
    assert_eq!(update["type"], "mesa_update");
    assert_eq!(
        estados(&update),
        all("disponible", Some((3, "ocupada"))),
        "all mesas, Spanish states"
    );
    let ts: u64 = update["timestamp"]
        .as_str()
        .expect("timestamp is a string")
        .parse()
        .expect("unix seconds");
    assert!(ts > 1_600_000_000, "{ts}");

    // Dirty and unknown tables have Spanish names too.
    put_state(&d.base, Some(STAFF), 3, r#"{"state":"dirty"}"#).await;
    let update = on_message(&mut sse).await;
    assert_eq!(
        estados(&update),
        all("disponible", Some((3, "por limpiar")))
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preflighted_put_from_the_page_changes_the_table_for_main_api_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(cors_daemon_config(dir.path())).await;
    let url = format!("{}/api/v1/mesas/2", d.base);

    // The browser's preflight for a PUT with a token and a JSON body.
    let res = http()
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", PAGE)
        .header("access-control-request-method", "PUT")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .expect("OPTIONS");
    assert!(res.status().is_success(), "{}", res.status());
    let h = res.headers();
    assert_eq!(header(h, "access-control-allow-origin"), PAGE);
    assert!(
        header(h, "access-control-allow-methods").contains("PUT"),
        "{h:?}"
    );
    let allowed = header(h, "access-control-allow-headers").to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );

    let mut main = Sse::connect(&d.base, "/api/v1/stream?types=table", &[]).await;
    let (snapshot, _) = main.next_json().await;
    assert_eq!(snapshot.event.as_deref(), Some("snapshot"));

    let put = |token: &'static str, body: Value| {
        http()
            .put(&url)
            .header("origin", PAGE)
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let res = put(STAFF, json!({"estado": "reservada"}))
        .await
        .expect("PUT");
    assert_eq!(res.status(), 200);
    assert_eq!(header(res.headers(), "access-control-allow-origin"), PAGE);
    let mesa: Value = res.json().await.expect("json");
    assert_eq!(
        (mesa["id_mesa"].clone(), mesa["estado"].clone()),
        (json!(2), json!("reservada"))
    );

    // A normal staff change: the main API's clients see it.
    let (msg, event) = main.next_json().await;
    assert_eq!(msg.event.as_deref(), Some("table.state"));
    assert_eq!(event["table"], 2);
    assert_eq!(event["actor"], "staff:staff");
    assert_eq!(event["data"]["to"], "reserved");
    let table = get_json(&d.base, "/api/v1/tables/2").await;
    assert_eq!(table["state"], "reserved");

    // A page that sends the whole mesa back works; its own fields are ignored.
    let mut whole = mesa.clone();
    whole["estado"] = json!("disponible");
    let res = put(STAFF, whole).await.expect("PUT");
    assert_eq!(res.status(), 200);
    let (_, event) = main.next_json().await;
    assert_eq!(event["data"]["to"], "free");

    // Refused, and nothing changes.
    let head = stats(&d.base).await["seq"].clone();
    let res = put(STAFF, json!({"estado": "occupied"}))
        .await
        .expect("PUT");
    assert_eq!(res.status(), 422);
    let err: Value = res.json().await.expect("json");
    assert_eq!(err["error"]["code"], "invalid_value");
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("estado:")),
        "{err}"
    );
    let res = put(VIEWER, json!({"estado": "ocupada"}))
        .await
        .expect("PUT");
    assert_eq!(res.status(), 403);
    let res = put(STAFF, json!({"estado": "ocupada", "color": "red"}))
        .await
        .expect("PUT");
    assert_eq!(res.status(), 400);
    let res = http()
        .put(format!("{}/api/v1/mesas/99", d.base))
        .bearer_auth(STAFF)
        .json(&json!({"estado": "ocupada"}))
        .send()
        .await
        .expect("PUT");
    assert_eq!(res.status(), 404);
    assert_eq!(stats(&d.base).await["seq"], head, "nothing was recorded");
    assert_eq!(
        get_json(&d.base, "/api/v1/mesas/2").await["estado"],
        "disponible"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cors_origins_no_origin_is_granted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = TestDaemon::start(config(dir.path(), &[])).await;
    let res = http()
        .get(format!("{}/api/v1/mesas", d.base))
        .header("origin", PAGE)
        .send()
        .await
        .expect("GET");
    assert_eq!(
        res.status(),
        200,
        "same-origin and non-browser clients work"
    );
    assert_eq!(header(res.headers(), "access-control-allow-origin"), "");
    let res = http()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/v1/mesas/1", d.base),
        )
        .header("origin", PAGE)
        .header("access-control-request-method", "PUT")
        .send()
        .await
        .expect("OPTIONS");
    assert_eq!(header(res.headers(), "access-control-allow-origin"), "");

    // The API's own 404 and 405 answers are unchanged.
    for (method, path, status, code) in [
        (
            reqwest::Method::DELETE,
            "/api/v1/mesas",
            405,
            "method_not_allowed",
        ),
        (reqwest::Method::GET, "/api/v1/nope", 404, "not_found"),
    ] {
        let res = http()
            .request(method, format!("{}{path}", d.base))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), status, "{path}");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["error"]["code"], code, "{path}");
    }
    d.stop().await;
}
