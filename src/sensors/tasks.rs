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
//!   at least every [`STOP_CHECK`]).

use super::Reading;
use super::gpio::ButtonEvent;
use super::sim::SimSensor;
use crate::sensors::spec::{SensorConfig, SensorKind, SimSpec};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest a sensor thread blocks before looking at the shutdown token.
pub const STOP_CHECK: Duration = Duration::from_millis(250);

/// What a sensor tells the engine task.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Reading {
        sensor: String,
        reading: Reading,
    },
    Fault {
        sensor: String,
        reason: String,
    },
    Recovered {
        sensor: String,
    },
    Button {
        sensor: String,
        event: ButtonEvent,
    },
    /// Set up and working, for inputs that have no reading to show it
    /// (a call button nobody pressed yet).
    Ready {
        sensor: String,
    },
}

/// The sending side of the engine task's queue, for sensor tasks and
/// threads. Cheap to clone.
#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::Sender<Report>,
}

impl Reporter {
    pub fn new(tx: mpsc::Sender<Report>) -> Reporter {
        Reporter { tx }
    }

    /// From async code; waits while the queue is full. False once the
    /// engine has stopped.
    pub async fn send(&self, report: Report) -> bool {
        self.tx.send(report).await.is_ok()
    }

    /// True once the engine task is gone (its runtime is shutting down):
    /// sensor threads end then even if nobody cancelled them.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// From a sensor thread; blocks that thread (never the runtime) while
    /// the queue is full. False once the engine has stopped.
    pub fn blocking_send(&self, report: Report) -> bool {
        self.tx.blocking_send(report).is_ok()
    }
}

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
    super::pi::spawn(sensors, reporter, shutdown, tasks);
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
