//! The rules of alerts (SPEC §1 Alert): flood control, the escalation
//! schedule, and what an alert may say. Pure functions on [`Alert`]s and
//! times; the store writer applies them to what is committed, the
//! escalation task ([`crate::engine::escalation`]) only asks when the next
//! step is due.
//!
//! Flood control (what a waiter expects from a guest who keeps pressing):
//! - A repeat is a raise from the same source (`sensor:<button>`,
//!   `staff:<name>`, `mqtt:<client>`) with the same kind, table, target and
//!   message. A button's repeats are its presses of one kind (a long press
//!   for the bill is a different request from a call).
//! - A repeat while that source's latest such alert is open bumps its
//!   `count` and `last_at` (one `alert.updated`), and never lowers its
//!   priority (a higher one asked for is taken).
//! - A repeat within `alerts.cooldown` after that alert was acked also bumps
//!   it, and it stays acked: the waiter who acked it is already on the way,
//!   so a guest pressing again meanwhile must not ring every tablet anew.
//!   After the cooldown a repeat opens a new alert.
//! - Open alerts are bounded per source ([`MAX_OPEN_PER_SOURCE`]) and in
//!   total ([`MAX_OPEN`]): a raise over either is refused (HTTP 429,
//!   counted in `alerts_refused`), so no peer can make the daemon hold (and
//!   every snapshot carry) more.
//!
//! Escalation: an open alert's step `n + 1` (it has had `n`) is due at
//! `created_at + (n + 1) × alerts.escalate_after`, up to
//! `alerts.max_escalations` steps; each raises the priority one step
//! (`normal` → `high` → `urgent`); an `urgent` alert still escalates (the
//! step is counted and published, so tablets can ring louder) but stays
//! `urgent`. The schedule is derived from stored times only, so it survives
//! a restart; steps that fell due while the daemon was down are made up
//! at once on start, so the priority is what it would have been. Repeats
//! do not move the schedule (a guest pressing again is more reason to
//! escalate, not less); an acked alert never escalates.

use crate::domain::{Alert, AlertKind};
use std::time::{Duration, SystemTime};

/// Most open alerts one source may have: a button has at most two (call
/// and bill), a kitchen tablet one per table and message.
pub const MAX_OPEN_PER_SOURCE: usize = 32;

/// Most open alerts in all: every snapshot carries them.
pub const MAX_OPEN: usize = 256;

/// Longest alert message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 200;

/// The `[alerts]` settings the rules need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertRules {
    /// An open alert escalates this long after it was raised, and again
    /// each time this much more has passed.
    pub escalate_after: Duration,
    /// After an ack, repeats from the same source are merged this long.
    pub cooldown: Duration,
    /// Most escalation steps per alert (0: alerts never escalate).
    pub max_escalations: u32,
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            escalate_after: Duration::from_secs(120),
            cooldown: Duration::from_secs(30),
            max_escalations: 2,
        }
    }
}

/// What an alert says when its raiser gave no message.
pub fn default_message(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::Call => "call button pressed",
        AlertKind::Bill => "bill requested (long press)",
        AlertKind::Kitchen => "kitchen",
        AlertKind::Refill => "refill",
        AlertKind::Custom => "alert",
    }
}

/// The message an alert keeps: `message` trimmed, or the kind's default
/// when absent or blank. Refused (the reason, for the `message` field):
/// longer than [`MAX_MESSAGE_CHARS`], or with control characters (a
/// message is one line on a tablet; see [`crate::text::printable`] for
/// showing it in a log).
pub fn message(kind: AlertKind, message: Option<&str>) -> Result<String, String> {
    let text = message.map(str::trim).unwrap_or("");
    if text.is_empty() {
        return Ok(default_message(kind).to_string());
    }
    let chars = text.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        return Err(format!("{chars} characters; at most {MAX_MESSAGE_CHARS}"));
    }
    if text.chars().any(char::is_control) {
        return Err(format!(
            "must be one line of printable text, got {}",
            crate::text::printable(text)
        ));
    }
    Ok(text.to_string())
}

/// Whether a repeat at `now` is merged into `latest`, the newest alert of
/// the same source, kind, table, target and message (module doc).
pub fn merges(latest: &Alert, now: SystemTime, rules: &AlertRules) -> bool {
    match latest.acked_at.as_deref() {
        None => true,
        Some(acked) => crate::clock::parse(acked)
            .and_then(|at| at.checked_add(rules.cooldown))
            .is_some_and(|until| now < until),
    }
}

/// When `alert`'s next escalation step is due, or `None` if it has none
/// left (acked, or `max_escalations` reached).
pub fn next_escalation(alert: &Alert, rules: &AlertRules) -> Option<SystemTime> {
    if !alert.is_open() || alert.escalations >= rules.max_escalations {
        return None;
    }
    let created = crate::clock::parse(&alert.created_at)?;
    let steps = alert.escalations.saturating_add(1);
    // A time beyond what SystemTime holds is never due.
    created.checked_add(rules.escalate_after.checked_mul(steps)?)
}

/// `alert` after one escalation step (the caller checked it is due).
pub fn escalated(alert: &Alert) -> Alert {
    Alert {
        priority: alert.priority.raised(),
        escalations: alert.escalations.saturating_add(1),
        ..alert.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Priority, Target};

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn alert(priority: Priority) -> Alert {
        Alert {
            id: 1,
            table: Some(3),
            kind: AlertKind::Call,
            priority,
            target: Target::Floor,
            message: "call button pressed".into(),
            count: 1,
            created_at: crate::clock::format(at(0)),
            last_at: crate::clock::format(at(0)),
            escalations: 0,
            acked_by: None,
            acked_at: None,
            source: "sensor:call-3".into(),
        }
    }

    #[test]
    fn an_urgent_alert_escalates_max_escalations_times_and_stays_urgent() {
        let rules = AlertRules {
            escalate_after: Duration::from_secs(60),
            cooldown: Duration::from_secs(30),
            max_escalations: 3,
        };
        let mut a = alert(Priority::Urgent);
        let mut due = Vec::new();
        while let Some(when) = next_escalation(&a, &rules) {
            due.push(when);
            a = escalated(&a);
            assert_eq!(a.priority, Priority::Urgent);
        }
        assert_eq!(due, vec![at(60), at(120), at(180)]);
        assert_eq!(a.escalations, 3);
    }

    #[test]
    fn priority_goes_up_one_step_per_escalation() {
        let a = alert(Priority::Normal);
        assert_eq!(escalated(&a).priority, Priority::High);
        assert_eq!(escalated(&escalated(&a)).priority, Priority::Urgent);
    }

    #[test]
    fn acked_alerts_and_zero_max_never_escalate() {
        let rules = AlertRules::default();
        let mut a = alert(Priority::Normal);
        a.acked_at = Some(crate::clock::format(at(5)));
        assert_eq!(next_escalation(&a, &rules), None);
        let never = AlertRules {
            max_escalations: 0,
            ..rules
        };
        assert_eq!(next_escalation(&alert(Priority::Normal), &never), None);
    }

    #[test]
    fn repeats_merge_while_open_and_within_the_cooldown_after_an_ack() {
        let rules = AlertRules {
            cooldown: Duration::from_secs(30),
            ..AlertRules::default()
        };
        let mut a = alert(Priority::Normal);
        assert!(merges(&a, at(10_000), &rules), "open: always");
        a.acked_at = Some(crate::clock::format(at(100)));
        assert!(merges(&a, at(129), &rules));
        assert!(!merges(&a, at(130), &rules), "cooldown over");
    }

    #[test]
    fn messages_are_one_bounded_printable_line() {
        assert_eq!(
            message(AlertKind::Bill, None).as_deref(),
            Ok("bill requested (long press)")
        );
        assert_eq!(
            message(AlertKind::Kitchen, Some("  ")).as_deref(),
            Ok("kitchen")
        );
        assert_eq!(
            message(AlertKind::Kitchen, Some(" mesa 4: paella ✓ ")).as_deref(),
            Ok("mesa 4: paella ✓")
        );
        assert!(message(AlertKind::Custom, Some("a\nforged")).is_err());
        let long = "x".repeat(MAX_MESSAGE_CHARS + 1);
        assert!(message(AlertKind::Custom, Some(&long)).is_err());
        let most = "ñ".repeat(MAX_MESSAGE_CHARS);
        assert!(message(AlertKind::Custom, Some(&most)).is_ok());
    }
}
