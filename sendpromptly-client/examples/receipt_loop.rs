//! The Rust SDK in the loop: receipts per second from `N` concurrent
//! callers of `Client::receipt(…).send()`, each receipt a new event with the
//! SDK's own `Idempotency-Key` (what `bench/sdk.sh loop` compares with wrk).
//!
//! ```sh
//! SENDPROMPTLY_API_KEY=sp_live_… SENDPROMPTLY_URL=http://127.0.0.1:7700 \
//!     cargo run --release -p sendpromptly-client --example receipt_loop -- tasks 256 10
//! ```
//!
//! `tasks N S`: N tasks on a two-worker Tokio runtime for S seconds (how a
//! Rust service calls it). `threads N S`: N OS threads, each blocking on the
//! same runtime per call (how the Python binding's sync `Client` calls it).
//! With `RECEIPT_LOOP_RANDOM_KEYS=1`, each call passes its own key of 128
//! random bits instead of the SDK's time-ordered one (the SDKs' keys before
//! they sorted by time; `docs/benchmarks.md`, "Random keys").

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sendpromptly_client::{Client, Provider};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: receipt_loop tasks|threads CONCURRENCY SECONDS";
    let mode = args.get(1).ok_or(usage)?.clone();
    let n: usize = args.get(2).ok_or(usage)?.parse()?;
    let seconds: u64 = args.get(3).ok_or(usage)?.parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = runtime.block_on(async { Client::from_env() })?;
    let run = std::process::id();
    let done = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let random_keys = std::env::var("RECEIPT_LOOP_RANDOM_KEYS").is_ok_and(|v| v == "1");
    let call = move |client: Client, tag: String| async move {
        let mut receipt = client
            .receipt(Provider::Stripe, tag, "invoice.paid")
            .subject("cus_bench");
        if random_keys {
            receipt = receipt.idempotency_key(format!("sp_idem_{:032x}", rand::random::<u128>()));
        }
        receipt.send().await
    };
    match mode.as_str() {
        "tasks" => runtime.block_on(async {
            let mut workers = Vec::new();
            for i in 0..n {
                let (client, done) = (client.clone(), done.clone());
                workers.push(tokio::spawn(async move {
                    let mut j = 0u64;
                    while Instant::now() < stop {
                        j += 1;
                        call(client.clone(), format!("evt_rl_{run}_{i}_{j}"))
                            .await
                            .expect("receipt");
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
            for w in workers {
                w.await.expect("worker");
            }
        }),
        "threads" => std::thread::scope(|s| {
            for i in 0..n {
                let (client, done, runtime) = (client.clone(), done.clone(), &runtime);
                s.spawn(move || {
                    let mut j = 0u64;
                    while Instant::now() < stop {
                        j += 1;
                        runtime
                            .block_on(call(client.clone(), format!("evt_rlt_{run}_{i}_{j}")))
                            .expect("receipt");
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        }),
        _ => return Err(usage.into()),
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    println!("rust_{mode}_rps={rate:.0}");
    Ok(())
}
