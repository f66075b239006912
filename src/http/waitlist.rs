//! The walk-in waitlist routes (SPEC §2, staff): list, add, edit, remove,
//! and seat a party. Rules are in [`crate::waitlist`]; every change is one
//! committed `waitlist.*` event (seating also the tables' `table.state`
//! events, in the same batch).

use super::AppState;
use super::error::{ApiError, AsStaff, JsonBody, Need, Query};
use crate::domain::{Party, PartyId, TableId, TableState};
use crate::store::{Change, Guard, Hold, StoreError, WaitlistChange};
use crate::waitlist::{self, MAX_WAITING, NewParty, PartyEdit};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer, Serialize};

/// Most seated and gone parties `GET /waitlist?since=` lists.
const HISTORY_LIMIT: usize = 1000;

/// A party as listed: its place in line (1 = next) while it is in line.
#[derive(Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    party: &'a Party,
    position: Option<usize>,
}

fn listed(parties: &[Party]) -> Vec<Listed<'_>> {
    let positions = waitlist::positions(parties);
    parties
        .iter()
        .map(|party| Listed {
            party,
            position: positions
                .iter()
                .find(|(id, _)| *id == party.id)
                .map(|(_, p)| *p),
        })
        .collect()
}

/// The party `party` with its place in the current line.
async fn answer(app: &AppState, status: StatusCode, party: &Party) -> Result<Response, ApiError> {
    let line = app.store.waitlist(None, MAX_WAITING).await?;
    let position = waitlist::positions(&line)
        .into_iter()
        .find(|(id, _)| *id == party.id)
        .map(|(_, p)| p);
    Ok((status, Json(Listed { party, position })).into_response())
}

/// `GET /api/v1/waitlist`: the parties in line, in order; with
/// `?since=<RFC 3339>` also those seated or gone that were added since
/// (the evening's record of quoted and actual waits).
pub async fn list(
    State(app): State<AppState>,
    _: AsStaff,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::parse(raw.as_deref(), &["since"])?;
    let since = match query.get("since") {
        Some(s) => Some(crate::clock::format(crate::clock::parse(s).ok_or_else(
            || ApiError::bad_request(format!("since: {s:?} is not an RFC 3339 time")),
        )?)),
        None => None,
    };
    let parties = app.store.waitlist(since, HISTORY_LIMIT).await?;
    Ok(Json(listed(&parties)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPartyBody {
    name: String,
    party_size: u32,
    phone: Option<String>,
    notes: Option<String>,
    quoted_minutes: Option<u32>,
}

pub async fn add(
    State(app): State<AppState>,
    Need(caller): AsStaff,
    JsonBody(body): JsonBody<NewPartyBody>,
) -> Result<Response, ApiError> {
    let line = app.store.waitlist(None, MAX_WAITING).await?;
    let ahead: Vec<u32> = line.iter().map(|p| p.party_size).collect();
    let quote = quote_for(&app, &ahead, body.party_size).await;
    let new = NewParty {
        name: body.name,
        party_size: body.party_size,
        phone: body.phone,
        notes: body.notes,
        quoted_minutes: body.quoted_minutes,
        quote,
    };
    let applied = app
        .store
        .apply(Change::Waitlist(WaitlistChange::Add(new)), caller.actor())
        .await?;
    let party = party_of(applied.event.as_ref().map(|e| &e.data))?;
    answer(&app, StatusCode::CREATED, party).await
}

/// The daemon's quote, as of now, for a party of `size` behind parties
/// of the sizes `ahead` (in line order).
async fn quote_for(app: &AppState, ahead: &[u32], size: u32) -> waitlist::Quoted {
    let turn = app.config.waitlist.turn_time;
    let (tables, booked) = waitlist::task::walk_in_view(&app.store, &app.hub.tables(), turn).await;
    let model = app.hub.predictor().model();
    waitlist::quote(
        app.store.wall().now(),
        &waitlist::Line {
            tables: &tables,
            ahead,
            booked: &booked,
            turn,
            bussing: app.config.occupancy.bussing,
        },
        size,
        model.as_deref(),
    )
}

/// `Some(value)` for a field that is present, `null` included, so a PATCH
/// can clear `phone`, `notes` and `quoted_minutes`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditBody {
    name: Option<String>,
    party_size: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    notes: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    quoted_minutes: Option<Option<u32>>,
}

fn parse_id(raw: &str) -> Result<PartyId, ApiError> {
    raw.parse::<PartyId>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request(format!("{raw:?} is not a waitlist party id")))
}

pub async fn edit(
    State(app): State<AppState>,
    Need(caller): AsStaff,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<EditBody>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    // A new party size is a new quote, from the party's place in line:
    // the old one was for tables this party may no longer fit.
    let mut quote = None;
    if let Some(size) = body.party_size {
        let line = app.store.waitlist(None, MAX_WAITING).await?;
        let resized = line
            .iter()
            .any(|p| p.id == id && p.status.in_line() && p.party_size != size);
        if resized && waitlist::check_party_size(size).is_ok() {
            let mut before: Vec<&Party> = line
                .iter()
                .filter(|p| p.status.in_line() && p.id < id)
                .collect();
            before.sort_by_key(|p| p.id);
            let ahead: Vec<u32> = before.iter().map(|p| p.party_size).collect();
            quote = Some(quote_for(&app, &ahead, size).await);
        }
    }
    let edit = PartyEdit {
        name: body.name,
        party_size: body.party_size,
        phone: body.phone,
        notes: body.notes,
        quoted_minutes: body.quoted_minutes,
        quote,
    };
    let change = WaitlistChange::Edit { id, edit };
    let applied = app
        .store
        .apply(Change::Waitlist(change), caller.actor())
        .await?;
    let party = party_of(applied.event.as_ref().map(|e| &e.data))?;
    answer(&app, StatusCode::OK, party).await
}

/// `DELETE`: the party left (the host took it off the list).
pub async fn remove(
    State(app): State<AppState>,
    Need(caller): AsStaff,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let applied = app
        .store
        .apply(
            Change::Waitlist(WaitlistChange::Leave { id }),
            caller.actor(),
        )
        .await?;
    let party = party_of(applied.event.as_ref().map(|e| &e.data))?;
    Ok(Json(Listed {
        party,
        position: None,
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeatBody {
    tables: Option<Vec<TableId>>,
}

/// `POST /waitlist/{id}/seat` with `{"tables": [..]}`, or `{}` for the
/// offered tables. The party's `waitlist.seated` and each table's `occupied` are one
/// batch; the tables' people estimate is the party size when it sits at
/// one table.
pub async fn seat(
    State(app): State<AppState>,
    Need(caller): AsStaff,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<SeatBody>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let given = body.tables;
    let line = app.store.waitlist(None, MAX_WAITING).await?;
    let party = line.iter().find(|p| p.id == id);
    let tables = match (given, party) {
        (Some(tables), _) => tables,
        (None, Some(p)) if !p.offered.is_empty() => p.offered.clone(),
        (None, Some(_)) => {
            return Err(ApiError::invalid_value(
                "tables: the party has no offer yet; name the tables to seat it at",
            ));
        }
        // Not in line: the writer says why (gone, seated, unknown).
        (None, None) => Vec::new(),
    };
    if tables.len() > crate::waitlist::MAX_PARTY_SIZE as usize {
        return Err(ApiError::invalid_value("tables: too many tables"));
    }
    let people = match (party, tables.len()) {
        (Some(p), 1) => Some(p.party_size),
        _ => None,
    };
    let mut changes = vec![Change::Waitlist(WaitlistChange::Seat {
        id,
        tables: tables.clone(),
    })];
    changes.extend(tables.iter().map(|&table| Change::SetState {
        id: table,
        state: TableState::Occupied,
        hold: Hold::Clear,
        people,
        guard: Guard::Staff,
    }));
    let applied = app
        .store
        .apply(Change::All(changes), caller.actor())
        .await?;
    let party = party_of(
        applied
            .parts
            .first()
            .and_then(|p| p.event.as_ref())
            .map(|e| &e.data),
    )?;
    Ok(Json(Listed {
        party,
        position: None,
    })
    .into_response())
}

fn party_of(data: Option<&crate::domain::EventData>) -> Result<&Party, ApiError> {
    data.and_then(crate::domain::EventData::party)
        .ok_or_else(|| {
            ApiError::from(StoreError::Invalid(
                "a waitlist change without its event".into(),
            ))
        })
}
