//! Waits for the signals that mean "stop": SIGTERM (systemd) and SIGINT
//! (Ctrl-C in a terminal).

use tokio::signal::unix::{SignalKind, signal};

pub async fn stop_requested() -> std::io::Result<&'static str> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
