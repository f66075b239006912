//! mesero: live table occupancy for a restaurant, on one Raspberry Pi.
//!
//! Where things live (README → module → function):
//! - [`config`]: the TOML file, checked, with environment overrides.
//! - [`auth`]: roles, credentials (API tokens and MQTT users) and the one
//!   constant-time check.
//! - [`store`]: SQLite; the single writer and the read connections.
//! - [`hub`]: committed events fanned out to live subscribers.
//! - [`broker`]: the embedded MQTT broker and its topics.
//! - [`upstream`]: the optional bridge to a group's MQTT broker (`[bridge]`),
//!   store-and-forward from the event log.
//! - [`occupancy`]: the pure state machine from readings to table states.
//! - [`sensors`]: drivers (GPIO, I2C, simulated) and their health.
//! - [`engine`]: the task that runs the engine and commits its decisions.
//! - [`feed`]: one client's gap-free view (snapshot, replay, live).
//! - [`reservations`]: booking rules, codes and the hold / no-show
//!   scheduler; [`localtime`]: `site.timezone`, local times and DST.
//! - [`domain`]: tables, typed events ([`domain::EventData`]), actors.
//! - [`http`]: REST, SSE, WebSocket, the floor-plan page.
//! - [`daemon`]: start-up and shutdown order.
//! - [`systemd`]: `sd_notify` (READY, STATUS, STOPPING) and the watchdog,
//!   fed only while every loop checks in; [`status`] is the status line.
//! - [`logging`]: journald under systemd, stderr otherwise; [`throttle`]
//!   rate-limits lines about misbehaving peers.
//! - [`cli`]: the `mesero` command (and `mesero watch`, the live event
//!   printer); [`sse`]: SSE framing and the SSE client parser.
//! - [`text`]: untrusted text shown on one line, escaped.
//! - [`alerts`]: alert rules (flood control, escalation schedule).
//! - [`visits`]: visits derived from the event log, their CSV import,
//!   the owner analytics and the HTML report (docs/ANALYTICS.md).

pub mod alerts;
pub mod auth;
pub mod broker;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod domain;
pub mod engine;
pub mod fault;
pub mod feed;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod hub;
pub mod localtime;
pub mod logging;
pub mod metrics;
pub mod occupancy;
pub mod pairing;
pub mod reservations;
pub mod sensors;
pub mod signals;
pub mod sse;
pub mod status;
pub mod store;
pub mod systemd;
pub mod tables;
pub mod text;
pub mod throttle;
pub mod tls;
pub mod turns;
pub mod upstream;
pub mod visits;
pub mod waitlist;
