//! The Tokio runtime the SDK runs on, and the two ways a foreign caller
//! waits for it: blocking the calling thread, or awaiting (Kotlin `suspend`,
//! Swift `async`) a task spawned on it.
//!
//! Fork safety (Puma, Unicorn and other pre-fork Ruby servers): a runtime's
//! threads do not survive `fork()`. The runtime is kept with the PID that
//! built it; a child process sees another PID and builds its own.

use std::future::Future;
use std::sync::Mutex;

use tokio::runtime::Runtime;

use crate::errors::{SendPromptlyError, config};

static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

/// The runtime of this process (built on first use, and again after a fork).
pub fn runtime() -> Result<&'static Runtime, SendPromptlyError> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((owner, rt)) = *slot
        && owner == pid
    {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sendpromptly")
        .enable_all()
        .build()
        .map_err(|err| config(format!("could not start the SDK's I/O threads: {err}")))?;
    // Lives as long as the process (and, after a fork, is abandoned).
    let rt: &'static Runtime = Box::leak(Box::new(rt));
    *slot = Some((pid, rt));
    Ok(rt)
}

/// Runs `fut` on the runtime and blocks the calling thread until it is
/// done. Safe from the runtime's own threads (a drop callback making a
/// blocking call): the future then runs on another task.
pub fn block_on<T: Send + 'static>(
    fut: impl Future<Output = Result<T, SendPromptlyError>> + Send + 'static,
) -> Result<T, SendPromptlyError> {
    let rt = runtime()?;
    if tokio::runtime::Handle::try_current().is_ok() {
        let (tx, rx) = std::sync::mpsc::channel();
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        return rx
            .recv()
            .unwrap_or_else(|_| Err(config("the SDK's I/O threads stopped")));
    }
    rt.block_on(fut)
}

/// Runs `fut` on the runtime and awaits it from any executor (the foreign
/// language's): the I/O happens on the runtime's threads.
pub async fn spawn<T: Send + 'static>(
    fut: impl Future<Output = Result<T, SendPromptlyError>> + Send + 'static,
) -> Result<T, SendPromptlyError> {
    runtime()?
        .spawn(fut)
        .await
        .unwrap_or_else(|err| Err(config(format!("the SDK's task failed: {err}"))))
}
