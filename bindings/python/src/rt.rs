//! The Tokio runtime the SDK runs on, and the two ways Python waits for it:
//! blocking with the GIL released (sync `Client`) or an awaitable completed
//! from the runtime through `loop.call_soon_threadsafe` (`AsyncClient`).
//!
//! Awaitable calls come back through one **completer** thread: the runtime's
//! workers hand it each finished call and it converts the answer and
//! schedules the future's completion on its event loop, holding one Python
//! thread state for its whole life. (Attaching from a Tokio worker instead
//! created and destroyed a thread state per call, ~11 % of `AsyncClient`'s
//! CPU; `docs/benchmarks.md`, "Random keys".) The completer takes every call
//! finished meanwhile each time it holds the GIL.
//!
//! Fork safety: a Tokio runtime's threads do not survive `os.fork()`. The
//! runtime is kept with the PID that built it; a child process (gunicorn and
//! uwsgi pre-fork workers) sees another PID and builds its own. The parent's
//! runtime is never dropped in the child (its threads do not exist there).

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyCFunction;
use tokio::runtime::Runtime;

use crate::errors;

static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

/// The runtime of this process (built on first use, and again after a fork).
pub fn runtime() -> PyResult<&'static Runtime> {
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
        .map_err(|err| {
            PyRuntimeError::new_err(format!(
                "sendpromptly: could not start its I/O threads: {err}"
            ))
        })?;
    // Lives as long as the process (and, after a fork, is abandoned).
    let rt: &'static Runtime = Box::leak(Box::new(rt));
    *slot = Some((pid, rt));
    Ok(rt)
}

/// An awaitable call that finished, on its way back to its event loop.
struct Completion {
    event_loop: Py<PyAny>,
    future: Py<PyAny>,
    setter: Py<PyAny>,
    outcome: Outcome,
}

static COMPLETER: Mutex<Option<(u32, Sender<Completion>)>> = Mutex::new(None);

/// The completer thread's queue (the thread started on first use, and again
/// after a fork, like the runtime).
fn completer() -> PyResult<Sender<Completion>> {
    let pid = std::process::id();
    let mut slot = COMPLETER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((owner, sender)) = &*slot
        && *owner == pid
    {
        return Ok(sender.clone());
    }
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("sendpromptly-complete".into())
        .spawn(move || complete(&Mutex::new(receiver)))
        .map_err(|err| {
            PyRuntimeError::new_err(format!(
                "sendpromptly: could not start its completion thread: {err}"
            ))
        })?;
    *slot = Some((pid, sender.clone()));
    Ok(sender)
}

/// The completer: attached to the interpreter once, it waits for finished
/// calls with the GIL released and completes each batch holding it.
fn complete(finished: &Mutex<Receiver<Completion>>) {
    // `None`: the interpreter is gone or going; nobody waits any more.
    let _ = Python::try_attach(|py| {
        loop {
            let received = py.detach(|| {
                let finished = finished.lock().unwrap_or_else(|p| p.into_inner());
                let first = finished.recv().ok()?;
                let mut batch = vec![first];
                batch.extend(finished.try_iter());
                Some(batch)
            });
            // `None`: every sender is gone (the process forked away from it).
            let Some(batch) = received else { break };
            for done in batch {
                let (ok, value) = match (done.outcome)(py) {
                    Ok(value) => (true, value),
                    Err(err) => (false, err.into_value(py).into_any()),
                };
                // Fails only when the loop is already closed: nobody waits.
                let _ = done.event_loop.call_method1(
                    py,
                    "call_soon_threadsafe",
                    (done.setter, done.future, ok, value),
                );
            }
        }
    });
}

/// What a finished call turns into, once the GIL is held again.
pub type Outcome = Box<dyn for<'py> FnOnce(Python<'py>) -> PyResult<Py<PyAny>> + Send>;
/// A call to run on the runtime.
pub type Job = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// Packs an SDK future and the conversion of its answer into a [`Job`].
pub fn job<T, F>(
    fut: F,
    convert: impl for<'py> FnOnce(Python<'py>, T) -> PyResult<Py<PyAny>> + Send + 'static,
) -> Job
where
    T: Send + 'static,
    F: Future<Output = Result<T, sendpromptly_client::Error>> + Send + 'static,
{
    Box::pin(async move {
        let result = fut.await;
        Box::new(move |py: Python<'_>| match result {
            Ok(value) => convert(py, value),
            Err(err) => Err(errors::to_py(py, &err)),
        }) as Outcome
    })
}

/// Runs `fut` to completion on the runtime with the GIL released.
pub fn block_on<T: Send + 'static>(
    py: Python<'_>,
    fut: impl Future<Output = T> + Send + 'static,
) -> PyResult<T> {
    let rt = runtime()?;
    py.detach(|| {
        if tokio::runtime::Handle::try_current().is_ok() {
            // Called from one of the runtime's own threads (e.g. an on_drop
            // callback making a sync call): block another thread instead.
            std::thread::scope(|s| s.spawn(|| rt.block_on(fut)).join())
                .map_err(|_| PyRuntimeError::new_err("sendpromptly: a worker thread failed"))
        } else {
            Ok(rt.block_on(fut))
        }
    })
}

/// Runs a job synchronously (sync `Client`).
pub fn run_sync(py: Python<'_>, job: Job) -> PyResult<Py<PyAny>> {
    let outcome = block_on(py, job)?;
    outcome(py)
}

/// An awaitable SDK call: nothing runs until it is awaited inside a running
/// asyncio event loop; cancelling the awaiting task cancels the call.
#[pyclass(module = "sendpromptly._native", frozen)]
pub struct Pending {
    job: Mutex<Option<Job>>,
}

impl Pending {
    /// Wraps a job.
    pub fn new(job: Job) -> Pending {
        Pending {
            job: Mutex::new(Some(job)),
        }
    }
}

fn set_future(args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
    let (future, ok, value): (Bound<'_, PyAny>, bool, Bound<'_, PyAny>) = args.extract()?;
    if future.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    if ok {
        future.call_method1("set_result", (value,))?;
    } else {
        future.call_method1("set_exception", (value,))?;
    }
    Ok(())
}

#[pymethods]
impl Pending {
    fn __await__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let job = self
            .job
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| {
                PyRuntimeError::new_err(
                    "cannot await a sendpromptly call twice; call the method again",
                )
            })?;
        let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
        let future = event_loop.call_method0("create_future")?;
        let setter = PyCFunction::new_closure(py, None, None, |args, _kwargs| set_future(args))?;
        let rt = runtime()?;
        let completer = completer()?;
        let (event_loop_ref, future_ref, setter_ref) = (
            event_loop.clone().unbind(),
            future.clone().unbind(),
            setter.into_any().unbind(),
        );
        let task = rt.spawn(async move {
            let outcome = job.await;
            // Fails only when the completer is gone (the interpreter is
            // finalizing): nobody waits.
            let _ = completer.send(Completion {
                event_loop: event_loop_ref,
                future: future_ref,
                setter: setter_ref,
                outcome,
            });
        });
        let abort = task.abort_handle();
        let canceller = PyCFunction::new_closure(py, None, None, move |args, _kwargs| {
            let future = args.get_item(0)?;
            if future.call_method0("cancelled")?.is_truthy()? {
                abort.abort();
            }
            Ok::<(), PyErr>(())
        })?;
        future.call_method1("add_done_callback", (canceller,))?;
        future.call_method0("__await__")
    }
}
