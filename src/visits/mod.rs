//! Visits (SPEC §1 Visit, issue 13): one row per seating, and what is made
//! of them. Pure rules, no I/O: [`derive`] turns the event log into visits
//! (the writer runs it as events are committed, `mesero db
//! rebuild-visits` over the whole log), [`import`] reads another system's
//! CSV export, [`analytics`] computes the owner's numbers, [`csv`] and
//! [`report`] render them (CSV files, the self-contained HTML report).

pub mod analytics;
pub mod csv;
pub mod derive;
pub mod import;
pub mod report;

pub use derive::{Derived, Deriver, VisitKey, derive};
