//! `mesero report`: the owner's report as one self-contained HTML file —
//! inline CSS and inline SVG charts, no script, no font or image to fetch
//! — that reads on a phone (the charts scale to the screen's width) and
//! can be mailed as it is. In Spanish unless `site.language` is `en`.

use super::analytics::{Analytics, WEEKDAYS};
use std::fmt::Write as _;

/// The report's words in one language.
struct Words {
    lang: &'static str,
    title: &'static str,
    period: &'static str,
    covers: &'static str,
    visits: &'static str,
    utilization: &'static str,
    utilization_note: &'static str,
    turns_per_table: &'static str,
    table: &'static str,
    /// Singular and plural.
    turns: [&'static str; 2],
    visit_count: [&'static str; 2],
    median: &'static str,
    turn_by_size: &'static str,
    party: &'static str,
    covers_per_day: &'static str,
    rates: &'static str,
    no_shows: &'static str,
    walk_aways: &'static str,
    ack: &'static str,
    uptime: &'static str,
    no_data: &'static str,
    minutes: &'static str,
    weekdays: [&'static str; 7],
    footer: &'static str,
}

const ES: Words = Words {
    lang: "es",
    title: "Informe",
    period: "Periodo",
    covers: "Cubiertos",
    visits: "Visitas",
    utilization: "Ocupación por hora y día",
    utilization_note: "Parte de las mesas ocupadas en cada hora (gris: sin datos).",
    turns_per_table: "Rotaciones por mesa",
    table: "Mesa",
    turns: ["rotación", "rotaciones"],
    visit_count: ["visita", "visitas"],
    median: "mediana",
    turn_by_size: "Duración de la visita por tamaño del grupo",
    party: "Grupo de",
    covers_per_day: "Cubiertos por día",
    rates: "Indicadores",
    no_shows: "Reservas no presentadas",
    walk_aways: "Grupos que se fueron de la lista de espera",
    ack: "Tiempo hasta atender un aviso",
    uptime: "Disponibilidad de los sensores",
    no_data: "sin datos",
    minutes: "min",
    weekdays: ["lun", "mar", "mié", "jue", "vie", "sáb", "dom"],
    footer: "Generado por mesero. Sin nombres ni teléfonos de clientes.",
};

const EN: Words = Words {
    lang: "en",
    title: "Report",
    period: "Period",
    covers: "Covers",
    visits: "Visits",
    utilization: "Utilization by hour and weekday",
    utilization_note: "Share of tables occupied in each hour (grey: no data).",
    turns_per_table: "Turns per table",
    table: "Table",
    turns: ["turn", "turns"],
    visit_count: ["visit", "visits"],
    median: "median",
    turn_by_size: "Turn time by party size",
    party: "Party of",
    covers_per_day: "Covers per day",
    rates: "Rates",
    no_shows: "Reservation no-shows",
    walk_aways: "Waitlist walk-aways",
    ack: "Time to acknowledge an alert",
    uptime: "Sensor uptime",
    no_data: "no data",
    minutes: "min",
    weekdays: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    footer: "Made by mesero. No guest names or phone numbers.",
};

const CSS: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;background:#f6f5f2;color:#222}\
main{max-width:960px;margin:0 auto;padding:16px}\
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.15em;margin:0 0 .5em}\
section{background:#fff;border-radius:10px;padding:14px 16px;margin:14px 0;box-shadow:0 1px 3px rgba(0,0,0,.08)}\
.sub{color:#666;font-size:.9em}.kpis{display:flex;flex-wrap:wrap;gap:10px}\
.kpi{flex:1 1 180px;background:#fff;border-radius:10px;padding:12px 14px;box-shadow:0 1px 3px rgba(0,0,0,.08)}\
.kpi b{display:block;font-size:1.7em}svg{width:100%;height:auto;display:block}\
svg text{font-size:12px;fill:#333}footer{color:#777;font-size:.8em;text-align:center;margin:20px 0}";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn pct(v: Option<f64>, w: &Words) -> String {
    v.map_or_else(|| w.no_data.to_string(), |v| format!("{:.1} %", v * 100.0))
}

fn mins(v: Option<f64>, w: &Words) -> String {
    v.map_or_else(
        || w.no_data.to_string(),
        |v| format!("{v:.0} {}", w.minutes),
    )
}

/// A colour from pale to dark green for a share 0..=1.
fn shade(v: f64) -> String {
    let v = v.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * v).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(232.0, 20.0),
        mix(245.0, 110.0),
        mix(233.0, 60.0)
    )
}

/// The whole HTML document for `a`, titled with the site's name.
pub fn render(a: &Analytics, site: &str, language: &str) -> String {
    let w = if language.trim().eq_ignore_ascii_case("en") {
        &EN
    } else {
        &ES
    };
    let total_visits: usize = a.covers.by_day.iter().map(|d| d.visits).sum();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} {site} {from}–{to}</title><style>{CSS}</style></head><body><main>\
         <h1>{title} · {site}</h1><p class=\"sub\">{period}: {from} – {to} ({tz})</p>\
         <div class=\"kpis\">\
         <div class=\"kpi\">{covers_l}<b>{covers}</b></div>\
         <div class=\"kpi\">{visits_l}<b>{visits}</b></div>\
         <div class=\"kpi\">{no_shows_l}<b>{no_show}</b></div>\
         <div class=\"kpi\">{walk_l}<b>{walk}</b></div></div>",
        lang = w.lang,
        title = w.title,
        site = esc(site),
        from = a.from,
        to = a.to,
        tz = esc(&a.timezone),
        period = w.period,
        covers_l = w.covers,
        covers = a.covers.total,
        visits_l = w.visits,
        visits = total_visits,
        no_shows_l = w.no_shows,
        no_show = pct(a.no_shows.rate, w),
        walk_l = w.walk_aways,
        walk = pct(a.walk_aways.rate, w),
    );
    heatmap(&mut h, a, w);
    turns_per_table(&mut h, a, w);
    turn_by_size(&mut h, a, w);
    covers_per_day(&mut h, a, w);
    rates(&mut h, a, w);
    let _ = writeln!(h, "<footer>{}</footer></main></body></html>", w.footer);
    h
}

fn heatmap(h: &mut String, a: &Analytics, w: &Words) {
    let (left, top, cw, ch) = (44.0, 18.0, 30.0, 26.0);
    let width = left + cw * 24.0 + 4.0;
    let height = top + ch * 7.0 + 4.0;
    let _ = write!(
        h,
        "<section id=\"utilization\"><h2>{}</h2><p class=\"sub\">{}</p>\
         <svg viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{}\">",
        w.utilization, w.utilization_note, w.utilization
    );
    for hour in (0..24).step_by(2) {
        let _ = write!(
            h,
            "<text x=\"{}\" y=\"12\" text-anchor=\"middle\">{hour:02}</text>",
            left + cw * f64::from(hour) + cw / 2.0
        );
    }
    for (d, row) in a.utilization.cells.iter().enumerate() {
        let y = top + ch * d as f64;
        let _ = write!(
            h,
            "<text x=\"0\" y=\"{}\">{}</text>",
            y + ch / 2.0 + 4.0,
            w.weekdays.get(d).copied().unwrap_or(WEEKDAYS[d % 7])
        );
        for (hour, cell) in row.iter().enumerate() {
            let fill = cell.map_or_else(|| "#dddddd".to_string(), shade);
            let title =
                cell.map_or_else(|| w.no_data.to_string(), |v| format!("{:.0} %", v * 100.0));
            let _ = write!(
                h,
                "<rect x=\"{}\" y=\"{y}\" width=\"{}\" height=\"{}\" rx=\"3\" fill=\"{fill}\"><title>{} {hour:02}h: {title}</title></rect>",
                left + cw * hour as f64 + 1.0,
                cw - 2.0,
                ch - 2.0,
                w.weekdays.get(d).copied().unwrap_or_default(),
            );
        }
    }
    h.push_str("</svg></section>");
}

/// Horizontal bars: `(label, value, text shown after the bar)`.
fn bars(h: &mut String, id: &str, title: &str, rows: &[(String, f64, String)], colour: &str) {
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(1e-9);
    // Room after the longest bar for its text (about 34 characters).
    let (left, bar_w, row_h) = (90.0, 290.0, 24.0);
    let height = row_h * rows.len().max(1) as f64 + 6.0;
    let _ = write!(
        h,
        "<section id=\"{id}\"><h2>{title}</h2><svg viewBox=\"0 0 640 {height}\" role=\"img\" aria-label=\"{title}\">"
    );
    for (i, (label, value, text)) in rows.iter().enumerate() {
        let y = row_h * i as f64 + 3.0;
        let len = (value / max * bar_w).max(1.0);
        let _ = write!(
            h,
            "<text x=\"0\" y=\"{}\">{}</text><rect x=\"{left}\" y=\"{y}\" width=\"{len:.1}\" height=\"{}\" rx=\"3\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{}\">{}</text>",
            y + row_h / 2.0 + 2.0,
            esc(label),
            row_h - 6.0,
            left + len + 6.0,
            y + row_h / 2.0 + 2.0,
            esc(text)
        );
    }
    h.push_str("</svg></section>");
}

fn turns_per_table(h: &mut String, a: &Analytics, w: &Words) {
    let rows: Vec<_> = a
        .turns_per_table
        .iter()
        .map(|t| {
            (
                format!("{} {}", w.table, t.table),
                t.turns as f64,
                format!(
                    "{} {} · {} {}",
                    t.turns,
                    w.turns[usize::from(t.turns != 1)],
                    w.median,
                    mins(t.median_minutes, w)
                ),
            )
        })
        .collect();
    bars(h, "turns_per_table", w.turns_per_table, &rows, "#3a7bd5");
}

fn turn_by_size(h: &mut String, a: &Analytics, w: &Words) {
    let rows: Vec<_> = a
        .turn_time_by_party_size
        .iter()
        .map(|p| {
            (
                format!("{} {}", w.party, p.party_size),
                p.median_minutes.unwrap_or(0.0),
                format!(
                    "{} {} · P80 {} · {} {}",
                    w.median,
                    mins(p.median_minutes, w),
                    mins(p.p80_minutes, w),
                    p.visits,
                    w.visit_count[usize::from(p.visits != 1)]
                ),
            )
        })
        .collect();
    bars(
        h,
        "turn_time_by_party_size",
        w.turn_by_size,
        &rows,
        "#e07b39",
    );
}

fn covers_per_day(h: &mut String, a: &Analytics, w: &Words) {
    let days = &a.covers.by_day;
    let max = days.iter().map(|d| d.covers).max().unwrap_or(0).max(1) as f64;
    let (top, plot_h, bottom) = (26.0, 160.0, 34.0);
    let step = 640.0 / days.len().max(1) as f64;
    let _ = write!(
        h,
        "<section id=\"covers\"><h2>{}</h2><svg viewBox=\"0 0 640 {}\" role=\"img\" aria-label=\"{}\">",
        w.covers_per_day,
        top + plot_h + bottom,
        w.covers_per_day
    );
    let label_every = (days.len() / 10).max(1);
    for (i, d) in days.iter().enumerate() {
        let bh = d.covers as f64 / max * plot_h;
        let x = step * i as f64;
        let _ = write!(
            h,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#2e9e6a\"><title>{}: {} {}</title></rect>",
            x + step * 0.1,
            top + plot_h - bh,
            step * 0.8,
            d.date,
            d.covers,
            w.covers.to_lowercase()
        );
        if i % label_every == 0 {
            let _ = write!(
                h,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x + step / 2.0,
                top + plot_h + 16.0,
                d.date.get(5..).unwrap_or(&d.date)
            );
        }
    }
    let _ = write!(
        h,
        "<text x=\"0\" y=\"12\">max {}</text></svg></section>",
        max as u64
    );
}

fn rates(h: &mut String, a: &Analytics, w: &Words) {
    let mut rows = vec![
        (
            w.no_shows.to_string(),
            a.no_shows.rate.unwrap_or(0.0),
            format!(
                "{} ({}/{})",
                pct(a.no_shows.rate, w),
                a.no_shows.no_shows,
                a.no_shows.reservations
            ),
        ),
        (
            w.walk_aways.to_string(),
            a.walk_aways.rate.unwrap_or(0.0),
            format!(
                "{} ({}/{})",
                pct(a.walk_aways.rate, w),
                a.walk_aways.left,
                a.walk_aways.parties
            ),
        ),
    ];
    for s in &a.sensor_uptime {
        rows.push((
            format!("{} {}", w.uptime, s.sensor),
            s.uptime.unwrap_or(0.0),
            pct(s.uptime, w),
        ));
    }
    let _ = write!(h, "<section id=\"rates\"><h2>{}</h2>", w.rates);
    let ack = &a.alert_ack_seconds;
    let secs = |v: Option<f64>| v.map_or_else(|| w.no_data.to_string(), |v| format!("{v:.0} s"));
    let _ = write!(
        h,
        "<p>{}: P50 {} · P90 {} ({})</p>",
        w.ack,
        secs(ack.p50),
        secs(ack.p90),
        ack.acked
    );
    let row_h = 24.0;
    let _ = write!(
        h,
        "<svg viewBox=\"0 0 640 {}\" role=\"img\" aria-label=\"{}\">",
        row_h * rows.len() as f64 + 6.0,
        w.rates
    );
    for (i, (label, value, text)) in rows.iter().enumerate() {
        let y = row_h * i as f64 + 3.0;
        let len = value.clamp(0.0, 1.0) * 180.0;
        let _ = write!(
            h,
            "<text x=\"0\" y=\"{ty}\">{}</text><rect x=\"290\" y=\"{y}\" width=\"180\" height=\"{bh}\" rx=\"3\" fill=\"#eee\"/>\
             <rect x=\"290\" y=\"{y}\" width=\"{len:.1}\" height=\"{bh}\" rx=\"3\" fill=\"#8a5cc2\"/><text x=\"478\" y=\"{ty}\">{}</text>",
            esc(label),
            esc(text),
            ty = y + row_h / 2.0 + 2.0,
            bh = row_h - 6.0,
        );
    }
    h.push_str("</svg></section>");
}
