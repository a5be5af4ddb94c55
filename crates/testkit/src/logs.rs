//! Reading what the code under test logs: a test binary of its own
//! installs the process's subscriber once, writing here.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

/// Everything logged since [`CapturedLogs::install`], as plain text lines.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Installs the process's log subscriber, filtered by `filter` (an
    /// `EnvFilter` directive such as `info,task=debug`), writing here.
    /// Panics when the process has one already.
    pub fn install(filter: &str) -> Self {
        let logs = Self::default();
        let writer = logs.clone();
        tracing::subscriber::set_global_default(
            tracing_subscriber::fmt()
                .with_ansi(false)
                .with_env_filter(filter)
                .with_writer(move || writer.clone())
                .finish(),
        )
        .expect("the test binary's only log subscriber");
        logs
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
