//! CSV exports: `GET /api/v1/visits.csv` (one row per visit, the same
//! columns `mesero db import-visits` reads plus the derived ones, times in
//! `site.timezone` with their offset) and one file per table of the
//! analytics (`GET /api/v1/analytics/{table}.csv`, [`TABLES`]). RFC 4180:
//! comma-separated, CRLF line ends, a header row; an empty field is a
//! number the range has no data for.

use super::analytics::Analytics;
use crate::domain::Visit;
use jiff::tz::TimeZone;
use std::fmt::Write as _;

/// The analytics tables that have a CSV export.
pub const TABLES: [&str; 4] = [
    "utilization",
    "turns_per_table",
    "turn_time_by_party_size",
    "covers",
];

fn num(v: Option<f64>) -> String {
    v.map(|v| {
        format!("{:.3}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    })
    .unwrap_or_default()
}

fn local(t: &str, tz: &TimeZone) -> String {
    crate::clock::parse(t).map_or_else(|| t.to_string(), |t| crate::localtime::format_local(t, tz))
}

pub fn visits(visits: &[Visit], tz: &TimeZone) -> String {
    let mut out =
        String::from("table,party_size,seated_at,left_at,minutes,origin,party_size_source\r\n");
    for v in visits {
        let tables: Vec<String> = v.tables.iter().map(ToString::to_string).collect();
        let _ = write!(
            out,
            "{},{},{},{},{},{},{}\r\n",
            tables.join("+"),
            v.party_size.map(|p| p.to_string()).unwrap_or_default(),
            local(&v.seated_at, tz),
            v.left_at
                .as_deref()
                .map(|l| local(l, tz))
                .unwrap_or_default(),
            num(super::analytics::turn_minutes(v)),
            v.origin.as_str(),
            v.party_size_source.map(|s| s.as_str()).unwrap_or_default(),
        );
    }
    out
}

/// One analytics table as CSV; `None` for a name not in [`TABLES`].
pub fn table(a: &Analytics, name: &str) -> Option<String> {
    let mut out = String::new();
    match name {
        "utilization" => {
            out.push_str("weekday");
            for h in &a.utilization.hours {
                let _ = write!(out, ",{h:02}");
            }
            out.push_str("\r\n");
            for (day, row) in a.utilization.weekdays.iter().zip(&a.utilization.cells) {
                out.push_str(day);
                for cell in row {
                    let _ = write!(out, ",{}", num(*cell));
                }
                out.push_str("\r\n");
            }
        }
        "turns_per_table" => {
            out.push_str("table,turns,median_minutes\r\n");
            for t in &a.turns_per_table {
                let _ = write!(out, "{},{},{}\r\n", t.table, t.turns, num(t.median_minutes));
            }
        }
        "turn_time_by_party_size" => {
            out.push_str("party_size,visits,median_minutes,p80_minutes\r\n");
            for p in &a.turn_time_by_party_size {
                let _ = write!(
                    out,
                    "{},{},{},{}\r\n",
                    p.party_size,
                    p.visits,
                    num(p.median_minutes),
                    num(p.p80_minutes)
                );
            }
        }
        "covers" => {
            out.push_str("date,covers,visits\r\n");
            for d in &a.covers.by_day {
                let _ = write!(out, "{},{},{}\r\n", d.date, d.covers, d.visits);
            }
        }
        _ => return None,
    }
    Some(out)
}
