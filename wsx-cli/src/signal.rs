//! The signal that stops a long-running command (`wsx serve`, `wsx bridge`).

/// Resolves at SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn sigint_or_sigterm() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
