//! Transactions submitted to producers while a recipe runs, so the runbook's procedures are
//! tried under load, as operators run them: a steady trickle to every listed producer, whether
//! it leads, follows or is not up yet.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// A thread submitting transactions until [`Load::stop`].
pub(super) struct Load {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

impl Load {
    /// Starts submitting to the producers listening on `https`, in turn, every 10 ms.
    pub(super) fn start(https: &[&'static str]) -> Self {
        let https = https.to_vec();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let (mut submitted, mut accepted) = (0_u64, 0_u64);
                while !stop.load(Ordering::Relaxed) {
                    for http in &https {
                        let answer = ureq::post(&format!("http://{http}/transactions"))
                            .config()
                            .http_status_as_error(false)
                            .timeout_global(Some(Duration::from_secs(2)))
                            .build()
                            .send(format!("load transaction {submitted}"));
                        submitted += 1;
                        if answer.is_ok_and(|answer| answer.status() == 202) {
                            accepted += 1;
                        }
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                accepted
            })
        };
        Self { stop, thread }
    }

    /// Stops submitting and returns how many transactions the producers accepted.
    pub(super) fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the load thread panicked")
    }
}
