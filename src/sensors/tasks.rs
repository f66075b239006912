//! Running the configured sensors: one task per simulated sensor, one
//! thread for all GPIO inputs, one thread per I2C bus. Each reports to
//! the occupancy engine task through a [`Reporter`].
//!
//! Invariants:
//! - Nothing here can take the daemon down: every hardware error becomes a
//!   [`Report::Fault`] (once per episode, as decided by
//!   [`super::health::Health`]) followed by retries with backoff, and
//!   blocking hardware calls run on their own threads, never on the async
//!   runtime.
//! - Readings are reported when they change (and once at start), so the
//!   channel carries little; staleness is judged where the sensor is read.
//! - Every loop ends soon after `shutdown` is cancelled (threads check it
//!   at least every [`super::report::STOP_CHECK`]).

use super::report::{Report, Reporter};
use super::sim::SimSensor;
use crate::sensors::spec::{SensorConfig, SensorKind, SimSpec};
use std::collections::BTreeMap;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Starts a task or thread for every configured sensor that has one
/// (`mqtt` sensors are fed from outside through the engine's
/// [`crate::engine::SensorInput`]).
pub fn spawn_all(
    sensors: &[SensorConfig],
    reporter: &Reporter,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) {
    for s in sensors {
        if let SensorKind::Sim(spec) = &s.kind {
            let sim = match spec {
                SimSpec::Scripted(steps) => SimSensor::scripted(steps.clone()),
                SimSpec::Random { seed, config } => SimSensor::random(*seed, config.clone()),
            };
            tasks.spawn(run_sim(
                s.id.clone(),
                sim,
                reporter.clone(),
                shutdown.clone(),
            ));
        }
    }
    let inputs: Vec<SensorConfig> = sensors
        .iter()
        .filter(|s| matches!(s.kind, SensorKind::Gpio(_) | SensorKind::Button(_)))
        .cloned()
        .collect();
    if !inputs.is_empty() {
        let (reporter, shutdown) = (reporter.clone(), shutdown.clone());
        tasks.spawn_blocking(move || super::pi::run_gpio(&inputs, &reporter, &shutdown));
    }
    let mut buses: BTreeMap<u8, Vec<SensorConfig>> = BTreeMap::new();
    for s in sensors {
        let bus = match &s.kind {
            SensorKind::Amg8833(a) => a.bus,
            SensorKind::Tof(t) => t.bus,
            _ => continue,
        };
        buses.entry(bus).or_default().push(s.clone());
    }
    for (bus, sensors) in buses {
        let (reporter, shutdown) = (reporter.clone(), shutdown.clone());
        tasks.spawn_blocking(move || super::pi::run_bus(bus, &sensors, &reporter, &shutdown));
    }
}

/// Plays a simulated sensor in (tokio) time: reports the reading at start
/// and then sleeps until its next change, so a paused test clock drives it.
async fn run_sim(id: String, mut sim: SimSensor, reporter: Reporter, shutdown: CancellationToken) {
    let start = Instant::now();
    let mut last = None;
    loop {
        let elapsed = start.elapsed();
        let reading = sim.reading_at(elapsed);
        if last != Some(reading) {
            last = Some(reading);
            let report = Report::Reading {
                sensor: id.clone(),
                reading,
            };
            if !reporter.send(report).await {
                return;
            }
        }
        let Some(next) = sim.next_change_after(elapsed) else {
            // The script is over; the last reading stands.
            shutdown.cancelled().await;
            return;
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(start + next) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensors::sim::Step;
    use std::time::Duration;
    use tokio::sync::mpsc;

    #[tokio::test(start_paused = true)]
    async fn scripted_sim_reports_each_change_on_time() {
        let (tx, mut rx) = mpsc::channel(16);
        let shutdown = CancellationToken::new();
        let sim = SimSensor::scripted(vec![
            Step {
                at: Duration::from_secs(5),
                present: true,
                people: Some(2),
            },
            Step {
                at: Duration::from_secs(7),
                present: true,
                people: Some(2),
            },
            Step {
                at: Duration::from_secs(60),
                present: false,
                people: None,
            },
        ]);
        let t0 = Instant::now();
        let task = tokio::spawn(run_sim(
            "s".into(),
            sim,
            Reporter::new(tx),
            shutdown.clone(),
        ));
        let mut got = Vec::new();
        for _ in 0..3 {
            let Some(Report::Reading { reading, .. }) = rx.recv().await else {
                panic!("expected a reading");
            };
            got.push((t0.elapsed().as_secs(), reading.present, reading.people));
        }
        assert_eq!(
            got,
            vec![(0, false, None), (5, true, Some(2)), (60, false, None)]
        );
        shutdown.cancel();
        task.await.expect("sim task ends");
    }
}
