//! Keeping joins symmetric when the floor plan is edited through the API:
//! a table's new `joins` becomes one [`Change::All`] that also adds or
//! removes the other side on each peer, so every affected table gets its
//! `table.updated` in one batch of consecutive events.

use crate::domain::{Table, TableId};
use crate::store::{Change, TablePatch};
use std::collections::BTreeSet;

/// The peer updates for table `id` whose joins become `new`, as seen
/// in `tables` (the hub's committed copy). A peer that changed meanwhile
/// is re-checked by the writer; joins are read as symmetric anyway
/// ([`crate::tables::combinations`]), so a lost race leaves nothing
/// unusable.
pub fn peer_changes(tables: &[Table], id: TableId, new: &[TableId]) -> Vec<Change> {
    let new: BTreeSet<TableId> = new.iter().copied().collect();
    let mut changes = Vec::new();
    for peer in tables.iter().filter(|t| t.id != id) {
        let mut joins: BTreeSet<TableId> = peer.joins.iter().copied().collect();
        let changed = if new.contains(&peer.id) {
            joins.insert(id)
        } else {
            // Also a one-sided join left by a lost race.
            joins.remove(&id)
        };
        if changed {
            changes.push(Change::UpdateTable {
                id: peer.id,
                patch: TablePatch {
                    joins: Some(joins.into_iter().collect()),
                    ..TablePatch::default()
                },
            });
        }
    }
    changes
}

/// `Some(None)` for an explicit `null`, `None` when the field is absent.
pub fn explicit_null<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(de).map(Some)
}
