//! The "mesas" compatibility API (SPEC §2, last part): what an existing
//! Spanish-named front end (a React `MesasGrid` page written for a FastAPI
//! backend) reads, so it works against mesero unchanged.
//!
//! - `GET /api/v1/mesas` (viewer) and `GET /api/v1/mesas/{id_mesa}`: each
//!   table as `{"id_mesa", "numero_mesa", "estado", "id_tipo_mesa",
//!   "tipo_mesa": {"id_tipo_mesa", "descripcion", "cantidad_sillas"}}`.
//! - `GET /api/v1/mesas/stream` (viewer): SSE of `data:` lines only (no
//!   `event:`, no `id:`: the page listens with `onmessage`). First
//!   `{"type": "connected", "message": ...}`, then `{"type":
//!   "mesa_update", "data": [all mesas], "timestamp": "<unix secs>"}` at
//!   once and after every committed table change, `: heartbeat` after 30 s
//!   without one.
//! - `PUT /api/v1/mesas/{id_mesa}` (staff) `{"estado": "ocupada"}`: a staff
//!   table change like `PUT /api/v1/tables/{id}/state` (same event, actor
//!   `staff:<token name>`, seen by every client); answers the mesa.
//!
//! How mesero's tables map (the choices where the old backend had its own
//! tables):
//! - `estado` is the state's Spanish label both ways: `disponible` (free),
//!   `ocupada`, `reservada`, `por limpiar` (dirty), `sin datos` (unknown).
//!   Another value is a 422 naming `estado`.
//! - `numero_mesa` is the table's `number` as a JSON integer when it is
//!   one (the old backend's column was an integer), else the label string.
//! - The table type is derived from the seats: `id_tipo_mesa` =
//!   `cantidad_sillas` = `seats`, `descripcion` = "Mesa para N personas".
//!   Tables with the same seats share a type, so a page that groups or
//!   colours by type keeps working.
//! - The PUT body may also carry the mesa's own read-only fields (`id_mesa`,
//!   `numero_mesa`, `id_tipo_mesa`, `tipo_mesa`: a page that sends the
//!   whole object back); they are ignored. Any other field is a 400.
//!
//! The stream differs from the old one in two ways a page only gains from:
//! the current list follows `connected` at once (so the gap between the
//! page's first GET and the stream, and every reconnect, leave nothing
//! stale), and several changes committed together give one message.
//!
//! Limits: each stream holds a slot of `http.max_streams` like
//! `/api/v1/stream`, and follows the hub like any stream client. Every
//! message carries all the tables, so a client that lagged (its place in
//! the hub's ring was overwritten) is sent the current list, which is
//! exactly what it missed; one that stops reading is closed by the hub's
//! reaper once a whole `http.client_queue` behind, and EventSource then
//! reconnects and gets the current list. Nothing is ever silently skipped.

use super::error::{ApiError, AsStaff, AsViewer, JsonBody, Need};
use super::limits::StreamSlot;
use super::{AppState, ConnKill};
use crate::auth::Role;
use crate::domain::{Table, TableId, TableState};
use crate::hub::{ClientKind, Subscription};
use crate::store::{Change, Guard, Hold};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde::Deserialize;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_util::sync::CancellationToken;

/// A `: heartbeat` comment after this long without a message (the old
/// backend's period, which pages and proxies in front of them expect).
pub const MESAS_HEARTBEAT: Duration = Duration::from_secs(30);

/// The `connected` message's text (the old backend's).
const CONNECTED: &str = "Conectado al stream de mesas";

/// One table as a mesa.
pub fn mesa(table: &Table) -> Value {
    let numero: Value = match table.number.parse::<u64>() {
        Ok(n) => json!(n),
        Err(_) => json!(table.number),
    };
    let seats = table.seats;
    let descripcion = if seats == 1 {
        "Mesa para 1 persona".to_string()
    } else {
        format!("Mesa para {seats} personas")
    };
    json!({
        "id_mesa": table.id,
        "numero_mesa": numero,
        "estado": table.state.label_es(),
        "id_tipo_mesa": seats,
        "tipo_mesa": {
            "id_tipo_mesa": seats,
            "descripcion": descripcion,
            "cantidad_sillas": seats,
        },
    })
}

fn mesas(tables: &[Table]) -> Value {
    Value::Array(tables.iter().map(mesa).collect())
}

/// The state whose Spanish label is `estado`.
fn parse_estado(estado: &str) -> Result<TableState, ApiError> {
    TableState::ALL
        .into_iter()
        .find(|s| s.label_es() == estado)
        .ok_or_else(|| {
            let labels: Vec<&str> = TableState::ALL.iter().map(|s| s.label_es()).collect();
            ApiError::invalid_value(format!(
                "estado: {estado:?} is not a state (one of: {})",
                labels.join(", ")
            ))
        })
}

fn parse_id(raw: &str) -> Result<TableId, ApiError> {
    raw.parse::<TableId>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request(format!("id_mesa: {raw:?} is not a table id")))
}

pub async fn list(State(app): State<AppState>, _: AsViewer) -> Json<Value> {
    Json(mesas(&app.hub.tables()))
}

pub async fn get_one(
    State(app): State<AppState>,
    _: AsViewer,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    app.hub
        .tables()
        .iter()
        .find(|t| t.id == id)
        .map(|t| Json(mesa(t)))
        .ok_or_else(|| ApiError::not_found(format!("mesa {id} not found")))
}

/// `PUT /api/v1/mesas/{id_mesa}`; the mesa's own fields are accepted and
/// ignored (see the module docs).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutBody {
    estado: String,
    #[serde(default, rename = "id_mesa")]
    _id_mesa: Option<Value>,
    #[serde(default, rename = "numero_mesa")]
    _numero_mesa: Option<Value>,
    #[serde(default, rename = "id_tipo_mesa")]
    _id_tipo_mesa: Option<Value>,
    #[serde(default, rename = "tipo_mesa")]
    _tipo_mesa: Option<Value>,
}

pub async fn put(
    State(app): State<AppState>,
    Need(caller): AsStaff,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PutBody>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let state = parse_estado(&body.estado)?;
    let hold = Hold::from_minutes(None, SystemTime::now()).map_err(ApiError::invalid_value)?;
    let applied = app
        .store
        .apply(
            Change::SetState {
                id,
                state,
                hold,
                people: None,
                guard: Guard::Staff,
            },
            caller.actor(),
        )
        .await?;
    match applied.table {
        Some(table) => Ok(Json(mesa(&table)).into_response()),
        None => Err(ApiError::not_found(format!("mesa {id} not found"))),
    }
}

/// One `data:` message (the JSON has no line breaks).
fn message(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

fn update(tables: &[Table]) -> Bytes {
    let timestamp = crate::clock::unix_secs(SystemTime::now()).to_string();
    message(&json!({
        "type": "mesa_update",
        "data": mesas(tables),
        "timestamp": timestamp,
    }))
}

enum Phase {
    Connected,
    First,
    Live,
}

struct MesasStream {
    sub: Subscription,
    app: AppState,
    phase: Phase,
    kill: CancellationToken,
    /// Freed when the body (and with it this state) is dropped.
    _slot: StreamSlot,
}

impl MesasStream {
    /// The next frame, `None` to end the stream.
    async fn next(&mut self) -> Option<Bytes> {
        match self.phase {
            Phase::Connected => {
                self.phase = Phase::First;
                return Some(message(
                    &json!({ "type": "connected", "message": CONNECTED }),
                ));
            }
            Phase::First => {
                self.phase = Phase::Live;
                return Some(update(&self.sub.tables));
            }
            Phase::Live => {}
        }
        let wake = tokio::select! {
            _ = self.app.shutdown.cancelled() => return None,
            _ = self.kill.cancelled() => return None,
            wake = next_change(&mut self.sub, MESAS_HEARTBEAT) => wake,
        };
        match wake {
            Wake::Heartbeat => Some(Bytes::from_static(b": heartbeat\n\n")),
            // Read after the events: the hub sets its tables in the same
            // lock as it sends them, so this list includes them.
            Wake::Changed => Some(update(&self.app.hub.tables())),
            Wake::Closed => None,
        }
    }
}

/// Why [`next_change`] returned.
#[derive(Debug, PartialEq, Eq)]
enum Wake {
    /// Tables changed (or the client lagged, so it may have missed a
    /// change): time to send the current list.
    Changed,
    /// Nothing changed for `idle`.
    Heartbeat,
    /// The hub is gone.
    Closed,
}

/// Waits for the next committed table change, taking along whatever else
/// is already queued (so a batch gives one message), and marking every
/// event seen for the hub's reaper.
async fn next_change(sub: &mut Subscription, idle: Duration) -> Wake {
    loop {
        let mut changed = match tokio::time::timeout(idle, sub.rx.recv()).await {
            Err(_) => return Wake::Heartbeat,
            Ok(Ok(p)) => {
                sub.seen(p.event.seq);
                p.event.kind().starts_with("table.")
            }
            // What it missed is in the current list.
            Ok(Err(RecvError::Lagged(_))) => true,
            Ok(Err(RecvError::Closed)) => return Wake::Closed,
        };
        loop {
            match sub.rx.try_recv() {
                Ok(p) => {
                    sub.seen(p.event.seq);
                    changed |= p.event.kind().starts_with("table.");
                }
                Err(TryRecvError::Lagged(_)) => changed = true,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        if changed {
            return Wake::Changed;
        }
    }
}

pub async fn stream(
    State(app): State<AppState>,
    Need(caller): AsViewer,
    kill: Option<axum::Extension<ConnKill>>,
) -> Result<Response, ApiError> {
    let slot = app.limits.open_stream(caller.role >= Role::Staff)?;
    let kill = kill.map(|k| k.0.0).unwrap_or_default();
    let sub = app.hub.subscribe(ClientKind::Sse, kill.clone());
    let state = MesasStream {
        sub,
        app,
        phase: Phase::Connected,
        kill,
        _slot: slot,
    };
    // The hub's reaper counts (in `slow_clients_closed`) and kills a
    // client that stopped reading; its connection is then dropped.
    let body = stream::unfold(state, |mut st| async move {
        let frame = st.next().await?;
        Some((Ok::<_, Infallible>(frame), st))
    });
    let mut response = Response::new(Body::from_stream(body));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tells a reverse proxy (nginx) not to buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Layout;

    fn table(number: &str, seats: u32, state: TableState) -> Table {
        Table {
            id: 7,
            number: number.into(),
            zone: "salon".into(),
            seats,
            layout: Layout::default(),
            state,
            people: None,
            since: String::new(),
            hold_until: None,
            reservation: None,
            joins: Vec::new(),
            combined_seats: None,
        }
    }

    #[test]
    fn a_table_is_shown_as_the_old_backend_showed_a_mesa() {
        assert_eq!(
            mesa(&table("7", 4, TableState::Occupied)),
            json!({
                "id_mesa": 7,
                "numero_mesa": 7,
                "estado": "ocupada",
                "id_tipo_mesa": 4,
                "tipo_mesa": {"id_tipo_mesa": 4, "descripcion": "Mesa para 4 personas", "cantidad_sillas": 4},
            })
        );
        let bar = mesa(&table("B2", 1, TableState::Dirty));
        assert_eq!(bar["numero_mesa"], "B2");
        assert_eq!(bar["estado"], "por limpiar");
        assert_eq!(bar["tipo_mesa"]["descripcion"], "Mesa para 1 persona");
    }

    fn event(seq: u64, data: crate::domain::EventData) -> crate::domain::Event {
        crate::domain::Event {
            seq,
            ts: String::new(),
            table: Some(7),
            actor: crate::domain::Actor::System,
            data,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_gives_one_update_and_a_lagging_client_gets_the_list() {
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::default());
        let hub = crate::hub::Hub::new(16, metrics);
        let mut sub = hub.subscribe(ClientKind::Internal, CancellationToken::new());
        let t = table("7", 4, TableState::Occupied);
        let other = || crate::domain::EventData::SystemStarted {
            version: "x".into(),
            site: "s".into(),
        };
        let tables = std::sync::Arc::new(vec![t.clone()]);
        hub.publish(vec![event(1, other())], tables.clone());
        let idle = Duration::from_secs(30);
        assert_eq!(
            next_change(&mut sub, idle).await,
            Wake::Heartbeat,
            "not a table change"
        );
        let state = |seq| {
            event(
                seq,
                crate::domain::EventData::TableUpdated { table: t.clone() },
            )
        };
        hub.publish(vec![state(2), state(3), event(4, other())], tables.clone());
        assert_eq!(next_change(&mut sub, idle).await, Wake::Changed);
        assert_eq!(
            next_change(&mut sub, idle).await,
            Wake::Heartbeat,
            "one update for the batch"
        );
        // Far more than the ring holds, none of them a table change: the
        // client cannot know what it missed, so it is sent the list.
        hub.publish((5..60).map(|n| event(n, other())).collect(), tables);
        assert_eq!(next_change(&mut sub, idle).await, Wake::Changed);
    }

    #[test]
    fn estados_are_the_spanish_labels_both_ways() {
        for state in TableState::ALL {
            assert_eq!(parse_estado(state.label_es()).ok(), Some(state));
        }
        let e = parse_estado("occupied").expect_err("English is not an estado");
        assert_eq!(e.status.as_u16(), 422);
        assert!(e.message.starts_with("estado:"), "{}", e.message);
    }
}
