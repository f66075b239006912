//! mesero: live table occupancy for a restaurant, on one Raspberry Pi.
//!
//! Where things live (README → module → function):
//! - [`config`]: the TOML file, checked, with environment overrides.
//! - [`store`]: SQLite; the single writer and the read connections.
//! - [`hub`]: committed events fanned out to live subscribers.
//! - [`broker`]: the embedded MQTT broker and its topics.
//! - [`feed`]: one client's gap-free view (snapshot, replay, live).
//! - [`http`]: REST, SSE, WebSocket, the floor-plan page.
//! - [`daemon`]: start-up and shutdown order.
//! - [`cli`]: the `mesero` command.

pub mod auth;
pub mod broker;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod domain;
pub mod feed;
pub mod http;
pub mod hub;
pub mod logging;
pub mod metrics;
pub mod signals;
pub mod store;
pub mod tables;
pub mod watch;
