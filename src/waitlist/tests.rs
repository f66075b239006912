use super::*;
use crate::domain::Layout;

const NOW: &str = "2026-12-02T20:00:00.000Z";

fn table(id: TableId, seats: u32, state: TableState, since: &str) -> Table {
    Table {
        id,
        number: id.to_string(),
        zone: String::new(),
        seats,
        layout: Layout::default(),
        state,
        people: None,
        since: since.into(),
        hold_until: None,
        reservation: None,
        joins: Vec::new(),
        combined_seats: None,
    }
}

fn party(id: PartyId, size: u32, status: PartyStatus, offered: &[TableId]) -> Party {
    Party {
        id,
        name: format!("party {id}"),
        party_size: size,
        phone: None,
        notes: None,
        added_at: NOW.into(),
        quote_p50_minutes: 0,
        quote_p80_minutes: 0,
        quoted_minutes: None,
        status,
        offered: offered.to_vec(),
        notified_at: None,
        tables: Vec::new(),
        seated_at: None,
        left_at: None,
        waited_minutes: None,
        quote_source: None,
        quote_predicted_from: None,
        baseline_minutes: None,
    }
}

fn now() -> SystemTime {
    crate::clock::parse(NOW).unwrap()
}

const TURN: Duration = Duration::from_secs(60 * 60);

#[test]
fn a_free_table_goes_to_the_first_party_it_fits_in_order() {
    let tables = [
        table(1, 2, TableState::Free, NOW),
        table(2, 4, TableState::Occupied, NOW),
    ];
    let parties = [
        party(10, 6, PartyStatus::Waiting, &[]),
        party(11, 2, PartyStatus::Waiting, &[]),
        party(12, 2, PartyStatus::Waiting, &[]),
    ];
    assert_eq!(offers(&tables, &parties), [(11, vec![1])]);
}

#[test]
fn the_smallest_fit_is_offered_and_a_table_is_offered_once() {
    let tables = [
        table(1, 8, TableState::Free, NOW),
        table(2, 4, TableState::Free, NOW),
        table(3, 4, TableState::Dirty, NOW),
    ];
    let parties = [
        party(10, 4, PartyStatus::Notified, &[2]),
        party(11, 3, PartyStatus::Waiting, &[]),
        party(12, 4, PartyStatus::Waiting, &[]),
    ];
    // Table 2 is already offered to party 10; 11 gets the 8-top; nothing
    // is left for 12.
    assert_eq!(offers(&tables, &parties), [(11, vec![1])]);
}

#[test]
fn an_offer_goes_stale_when_its_table_is_taken() {
    let tables = [
        table(1, 4, TableState::Occupied, NOW),
        table(2, 4, TableState::Free, NOW),
    ];
    let parties = [
        party(10, 4, PartyStatus::Notified, &[1]),
        party(11, 4, PartyStatus::Notified, &[2]),
        party(12, 4, PartyStatus::Notified, &[7]),
    ];
    assert_eq!(stale_offers(&tables, &parties), [10, 12]);
}

#[test]
fn the_quote_counts_tables_that_fit_and_the_parties_ahead() {
    let seated_30_min_ago = "2026-12-02T19:30:00.000Z";
    let tables = [
        table(1, 4, TableState::Occupied, seated_30_min_ago),
        table(2, 4, TableState::Occupied, NOW),
        table(3, 2, TableState::Free, NOW),
    ];
    // Nobody ahead: table 1 is expected in 30 minutes.
    assert_eq!(
        baseline(now(), &tables, &[], 4, TURN),
        Quote { p50: 30, p80: 40 }
    );
    // One four ahead takes table 1; then table 2 in 60.
    assert_eq!(baseline(now(), &tables, &[4], 4, TURN).p50, 60);
    // Two ahead: a second round of table 1: 30 + 60.
    assert_eq!(baseline(now(), &tables, &[4, 3], 4, TURN).p50, 90);
    // A two ahead of a two: the free two-top goes to it, so the next fit
    // is table 1 in 30.
    assert_eq!(baseline(now(), &tables, &[2], 2, TURN).p50, 30);
    // A free fit and nobody ahead: no wait.
    assert_eq!(
        baseline(now(), &tables, &[], 2, TURN),
        Quote { p50: 0, p80: 0 }
    );
    // Nothing seats ten alone: a turn.
    assert_eq!(baseline(now(), &tables, &[], 10, TURN).p50, 60);
}

#[test]
fn an_overdue_table_is_still_a_few_minutes_away() {
    let tables = [table(
        1,
        4,
        TableState::Occupied,
        "2026-12-02T18:00:00.000Z",
    )];
    assert_eq!(
        baseline(now(), &tables, &[], 4, TURN),
        Quote { p50: 5, p80: 10 }
    );
}

#[test]
fn positions_count_only_parties_in_line() {
    let parties = [
        party(12, 2, PartyStatus::Notified, &[1]),
        party(10, 2, PartyStatus::Seated, &[]),
        party(11, 2, PartyStatus::Waiting, &[]),
        party(13, 2, PartyStatus::Left, &[]),
    ];
    assert_eq!(positions(&parties), [(11, 1), (12, 2)]);
}

#[test]
fn what_a_host_types_is_checked_naming_the_field() {
    let mut new = NewParty {
        name: "Ana".into(),
        party_size: 2,
        phone: None,
        notes: None,
        quoted_minutes: Some(20),
        quote: Quoted {
            quote: Quote { p50: 0, p80: 0 },
            source: QuoteSource::Baseline,
            predicted_from: 0,
            baseline: 0,
        },
    };
    assert_eq!(check_new(&new), Ok(()));
    new.party_size = 0;
    assert_eq!(check_new(&new).unwrap_err().0, "party_size");
    new.party_size = 2;
    new.name = " ".into();
    assert_eq!(check_new(&new).unwrap_err().0, "name");
    new.name = "Ana".into();
    new.notes = Some("a\nb".into());
    assert_eq!(check_new(&new).unwrap_err().0, "notes");
    new.notes = None;
    new.quoted_minutes = Some(MAX_QUOTED_MINUTES + 1);
    assert_eq!(check_new(&new).unwrap_err().0, "quoted_minutes");
    let edit = PartyEdit {
        phone: Some(Some("x".repeat(MAX_PHONE_LEN + 1))),
        ..PartyEdit::default()
    };
    assert_eq!(check_edit(&edit).unwrap_err().0, "phone");
}
