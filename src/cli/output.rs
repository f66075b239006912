//! What commands print: stdout through [`out`] / `say!` (errors returned,
//! never panicked on), notes for the user on stderr through [`note`].

/// Writes command output to stdout, flushed. Errors are returned, never
/// panicked on (`print!` would panic, and with `panic = "abort"` that is a
/// crash); they carry their [`std::io::ErrorKind`], so [`main`](super::main) can tell a
/// reader that went away (`mesero check | head -1`: exit 0) from a full
/// disk (exit 1).
pub fn out(text: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_fmt(text)
        .and_then(|()| stdout.flush())
        .map_err(|e| std::io::Error::new(e.kind(), format!("writing to stdout: {e}")))
}

/// `println!` through [`out`]: evaluates to `std::io::Result<()>`.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::out(format_args!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use say;

/// A line for the user on stderr. If stderr is gone too there is nobody
/// left to tell, so a failed write is ignored (`eprintln!` would panic).
pub fn note(text: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}
