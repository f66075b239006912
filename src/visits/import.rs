//! `mesero db import-visits FILE.csv`: past visits from another system.
//!
//! The file: a header `table,party_size,seated_at,left_at`, then one visit
//! a line. `table` is a table's number as shown to staff (its `number`),
//! or its id when no table has that number; a combination is written
//! `3+4`. Times are local (`site.timezone`), `YYYY-MM-DD HH:MM[:SS]` (or
//! with a `T`), or RFC 3339 with an offset. Fields may be quoted; blank
//! lines are skipped. Every bad row is reported with its line number and
//! why; the caller imports nothing unless there are none (or skips them,
//! with `--skip-bad`).

use crate::domain::{PartySizeSource, Table, TableId, Visit, VisitOrigin};
use jiff::tz::TimeZone;
use std::time::{Duration, SystemTime};

/// Largest file read, in bytes (16 MiB: some 300 000 lines, far more than
/// years of a restaurant's visits).
pub const MAX_IMPORT_BYTES: u64 = 16 * 1024 * 1024;

/// Most visits in one file (a year of a busy 40-table restaurant is well
/// under this); a longer file is refused whole.
pub const MAX_IMPORT_ROWS: usize = 200_000;

/// Largest party size accepted (the same bound as `PUT
/// /api/v1/tables/{id}/state`'s `party_size`).
pub const MAX_PARTY_SIZE: u32 = 1000;

/// Longest visit accepted: a row seated longer is a typo (a wrong date).
pub const MAX_VISIT: Duration = Duration::from_secs(24 * 3600);

/// The header the file must start with.
pub const HEADER: &str = "table,party_size,seated_at,left_at";

/// A line that cannot be imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// 1-based, counting the header as line 1.
    pub line: usize,
    pub why: String,
}

impl std::fmt::Display for BadRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.why)
    }
}

/// What a file holds: the good visits (origin `import`) and the bad rows.
#[derive(Debug, Default)]
pub struct Parsed {
    pub visits: Vec<Visit>,
    pub bad: Vec<BadRow>,
}

/// Reads the whole file (see the module doc). An error is a file that is
/// not of this form at all (no header, too many rows): nothing in it is
/// read.
pub fn parse(text: &str, tables: &[Table], tz: &TimeZone) -> Result<Parsed, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate();
    let header = loop {
        match lines.next() {
            Some((_, l)) if l.trim().is_empty() => continue,
            Some((i, l)) => break (i + 1, l),
            None => return Err("the file is empty; its first line must be the header".into()),
        }
    };
    let names: Vec<String> = split(header.1)
        .map_err(|why| format!("line {}: {why}", header.0))?
        .iter()
        .map(|f| f.trim().to_ascii_lowercase())
        .collect();
    if names.join(",") != HEADER {
        return Err(format!(
            "line {}: the header must be {HEADER:?}, not {:?}",
            header.0, header.1
        ));
    }
    let mut parsed = Parsed::default();
    let mut rows = 0usize;
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        rows += 1;
        if rows > MAX_IMPORT_ROWS {
            return Err(format!(
                "more than {MAX_IMPORT_ROWS} visits in one file; split it"
            ));
        }
        match row(line, tables, tz) {
            Ok(visit) => parsed.visits.push(visit),
            Err(why) => parsed.bad.push(BadRow { line: i + 1, why }),
        }
    }
    Ok(parsed)
}

fn row(line: &str, tables: &[Table], tz: &TimeZone) -> Result<Visit, String> {
    let fields = split(line)?;
    let [table, party, seated, left] = fields.as_slice() else {
        return Err(format!("{} fields; a row has 4 ({HEADER})", fields.len()));
    };
    let tables = table_ids(table.trim(), tables)?;
    let party_size = party
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|p| (1..=MAX_PARTY_SIZE).contains(p))
        .ok_or_else(|| {
            format!("party_size: {party:?} is not a whole number from 1 to {MAX_PARTY_SIZE}")
        })?;
    let seated_at = time("seated_at", seated, tz)?;
    let left_at = time("left_at", left, tz)?;
    let stay = left_at.duration_since(seated_at).map_err(|_| {
        format!(
            "left_at ({}) is before seated_at ({})",
            left.trim(),
            seated.trim()
        )
    })?;
    if stay.is_zero() {
        return Err("left_at is the same as seated_at".into());
    }
    if stay > MAX_VISIT {
        return Err(format!(
            "the visit lasts more than {} hours (left_at {}, seated_at {})",
            MAX_VISIT.as_secs() / 3600,
            left.trim(),
            seated.trim()
        ));
    }
    Ok(Visit {
        id: 0,
        tables,
        party_size: Some(party_size),
        party_size_source: Some(PartySizeSource::Import),
        seated_at: crate::clock::format(seated_at),
        left_at: Some(crate::clock::format(left_at)),
        origin: VisitOrigin::Import,
    })
}

fn table_ids(text: &str, tables: &[Table]) -> Result<Vec<TableId>, String> {
    let mut ids = Vec::new();
    for part in text.split('+') {
        let part = part.trim();
        let by_number = tables.iter().find(|t| t.number == part);
        let by_id = || {
            part.parse::<TableId>()
                .ok()
                .and_then(|id| tables.iter().find(|t| t.id == id))
        };
        let Some(table) = by_number.or_else(by_id) else {
            return Err(format!("table: no table {part:?} on the floor plan"));
        };
        if ids.contains(&table.id) {
            return Err(format!("table: {part:?} is named twice in {text:?}"));
        }
        ids.push(table.id);
    }
    Ok(ids)
}

fn time(field: &str, text: &str, tz: &TimeZone) -> Result<SystemTime, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{field}: missing"));
    }
    crate::localtime::parse_at(text, tz).map_err(|_| {
        format!(
            "{field}: {text:?} is not a time (YYYY-MM-DD HH:MM[:SS] local, or RFC 3339 with an offset)"
        )
    })
}

/// Splits one CSV line (commas; a field may be double-quoted, `""` inside
/// quotes is one quote).
fn split(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (false, '"') if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (_, c) => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    fields.push(field);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Layout, TableState};

    fn table(id: TableId, number: &str) -> Table {
        Table {
            id,
            number: number.into(),
            zone: "salon".into(),
            seats: 4,
            layout: Layout::default(),
            state: TableState::Free,
            people: None,
            since: String::new(),
            hold_until: None,
            reservation: None,
            joins: Vec::new(),
            combined_seats: None,
        }
    }

    fn madrid() -> TimeZone {
        crate::localtime::zone("Europe/Madrid").expect("zone")
    }

    #[test]
    fn rows_are_read_in_local_time_and_combinations_by_number() {
        let plan = [table(1, "1"), table(2, "2"), table(7, "T7")];
        let text = "table,party_size,seated_at,left_at\n\
                    1,2,2026-11-30 20:00,2026-11-30 21:15:30\n\
                    \n\
                    \"1+2\",5,2026-11-30T19:00:00Z,2026-11-30T21:00:00+01:00\n\
                    T7,3,2026-11-30T21:00,2026-11-30T22:00\n";
        let parsed = parse(text, &plan, &madrid()).expect("parse");
        assert!(parsed.bad.is_empty(), "{:?}", parsed.bad);
        let v = &parsed.visits;
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].tables, [1]);
        assert_eq!(v[0].seated_at, "2026-11-30T19:00:00.000Z");
        assert_eq!(v[0].left_at.as_deref(), Some("2026-11-30T20:15:30.000Z"));
        assert_eq!(v[1].tables, [1, 2]);
        assert_eq!(v[1].left_at.as_deref(), Some("2026-11-30T20:00:00.000Z"));
        assert_eq!(v[2].tables, [7]);
        assert_eq!(v[2].origin, VisitOrigin::Import);
    }

    #[test]
    fn every_bad_row_is_named_with_its_line_and_why() {
        let plan = [table(1, "1")];
        let text = "table,party_size,seated_at,left_at\n\
                    9,2,2026-11-30 20:00,2026-11-30 21:00\n\
                    1,0,2026-11-30 20:00,2026-11-30 21:00\n\
                    1,2,yesterday,2026-11-30 21:00\n\
                    1,2,2026-11-30 20:00,2026-11-30 19:00\n\
                    1,2,2026-11-30 20:00\n\
                    1+1,2,2026-11-30 20:00,2026-11-30 21:00\n\
                    1,2,2026-11-30 20:00,2026-12-02 21:00\n";
        let parsed = parse(text, &plan, &madrid()).expect("parse");
        let lines: Vec<usize> = parsed.bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7, 8]);
        let why: Vec<&str> = parsed.bad.iter().map(|b| b.why.as_str()).collect();
        assert!(why[0].starts_with("table:"), "{why:?}");
        assert!(why[1].starts_with("party_size:"), "{why:?}");
        assert!(why[2].starts_with("seated_at:"), "{why:?}");
        assert!(why[3].contains("before seated_at"), "{why:?}");
        assert!(
            why[4].contains("4 fields") || why[4].contains("3 fields"),
            "{why:?}"
        );
        assert!(why[5].contains("twice"), "{why:?}");
        assert!(why[6].contains("24 hours"), "{why:?}");
    }

    #[test]
    fn a_file_without_the_header_is_refused_whole() {
        let err = parse("1,2,3,4\n", &[], &madrid()).expect_err("no header");
        assert!(err.contains("header"), "{err}");
    }
}
