//! Client connections while the process hands its listeners to a successor.
//!
//! On `SIGQUIT` Pingora sends the listening sockets to the new process, keeps
//! accepting for 5 s, then stops and closes every idle keep-alive connection
//! at once. A client may be sending its next request on such a connection at
//! that moment; it gets a reset. So from the hand-over on, every answer of
//! this process says `Connection: close`: keep-alive clients move to new
//! connections, which the new process also accepts, while the old one still
//! serves, and by the time it closes what is left nobody is using it.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use pingora::server::{ExecutionPhase, ShutdownWatch};
use pingora::services::background::BackgroundService;
use tokio::sync::broadcast::{error::RecvError, Receiver};
use tracing::info;

/// Set once, when the hand-over starts; a process never serves normally again.
static HANDING_OVER: AtomicBool = AtomicBool::new(false);

/// Whether this process is handing its listeners to a new one.
pub fn is_handing_over() -> bool {
    HANDING_OVER.load(Ordering::Relaxed)
}

/// The background service that learns of the hand-over from Pingora's
/// execution phases.
pub struct HandoverWatch {
    /// Subscribed before the server runs; `start` takes a fresh copy.
    phases: Receiver<ExecutionPhase>,
}

impl HandoverWatch {
    /// `phases` comes from `Server::watch_execution_phase`.
    pub fn new(phases: Receiver<ExecutionPhase>) -> HandoverWatch {
        HandoverWatch { phases }
    }
}

#[async_trait]
impl BackgroundService for HandoverWatch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut phases = self.phases.resubscribe();
        loop {
            let phase = tokio::select! {
                phase = phases.recv() => phase,
                _ = shutdown.changed() => return,
            };
            match phase {
                Ok(ExecutionPhase::GracefulUpgradeTransferringFds) => {
                    HANDING_OVER.store(true, Ordering::Relaxed);
                    info!("handing over to the new process");
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
        }
    }
}
