//! Active health checks, run as a Pingora background service.
//!
//! Every pool with a `health_check` gets one task that probes all its backends
//! each `interval`, concurrently, each probe bounded by `timeout`. A backend
//! flips to unhealthy after `unhealthy_threshold` failed probes in a row and
//! back after `healthy_threshold` passing ones. The probes themselves are
//! Pingora's `HttpHealthCheck` and `TcpHealthCheck`, and Portico's own
//! [`GrpcHealthCheck`] for `type: grpc`.

use std::sync::Arc;

use async_trait::async_trait;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::Backend as LbBackend;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::{Error, ErrorType};
use tracing::debug;

use super::grpc_health::GrpcHealthCheck;
use super::{Backend, Pool};
use crate::config::schema::{HealthCheckKind, HealthCheckSpec};
use crate::gateway::SharedSnapshot;
use crate::tls::upstream::UpstreamTls;

/// The background service that owns every pool's checker.
pub struct HealthChecker {
    pub snapshot: SharedSnapshot,
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // The pools of the snapshot current at start-up; a reloaded snapshot
        // would need its own tasks (configuration reload is not built yet).
        let snapshot = self.snapshot.load_full();
        let mut tasks = Vec::new();
        for pool in snapshot.pools.values() {
            if let Some(spec) = pool.health_check.clone() {
                tasks.push(tokio::spawn(check_pool_forever(Arc::clone(pool), spec)));
            }
        }
        let _ = shutdown.changed().await;
        for t in tasks {
            t.abort();
        }
    }
}

async fn check_pool_forever(pool: Arc<Pool>, spec: HealthCheckSpec) {
    let probes: Vec<Option<Box<dyn HealthCheck + Send + Sync>>> = pool
        .backends()
        .iter()
        .enumerate()
        .map(|(i, b)| match spec.kind {
            HealthCheckKind::Grpc => {
                let service = spec.service.as_deref().unwrap_or("");
                let authority = spec.host.as_deref().unwrap_or(&b.label);
                let probe = GrpcHealthCheck::new(pool.peer(i), authority, service);
                Some(Box::new(probe) as Box<dyn HealthCheck + Send + Sync>)
            }
            _ => build_probe(&spec, b, pool.tls.as_deref()),
        })
        .collect();
    let mut ticker = tokio::time::interval(spec.interval.0);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        check_pool_once(&pool, &spec, &probes).await;
        pool.mark_checked();
    }
}

async fn check_pool_once(
    pool: &Pool,
    spec: &HealthCheckSpec,
    probes: &[Option<Box<dyn HealthCheck + Send + Sync>>],
) {
    let runs = pool
        .backends()
        .iter()
        .zip(probes)
        .map(|(b, probe)| async move {
            let Some(probe) = probe else { return false };
            let Ok(target) = LbBackend::new(&b.label) else {
                return false;
            };
            match tokio::time::timeout(spec.timeout.0, probe.check(&target)).await {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    let (upstream, backend) = (&pool.name, &b.label);
                    debug!(%upstream, %backend, error = %e, "health probe failed");
                    false
                }
                Err(_) => {
                    debug!(upstream = %pool.name, backend = %b.label, "health probe timed out");
                    false
                }
            }
        });
    let results = futures_util::future::join_all(runs).await;
    for (idx, ok) in results.into_iter().enumerate() {
        let b = &pool.backends()[idx];
        let (rise, fall) = (spec.healthy_threshold, spec.unhealthy_threshold);
        if let Some(up) = b.record_check(ok, rise, fall) {
            pool.log_health_change(idx, up);
        }
    }
}

/// Builds the HTTP or TCP probe for one backend; `None` when the spec cannot
/// make a valid request (validation rules that out) or is of another kind.
/// Over TLS when the pool speaks it, with the pool's SNI, verification, CA
/// and client certificate: a backend whose certificate the proxy would
/// refuse is not healthy.
fn build_probe(
    spec: &HealthCheckSpec,
    backend: &Backend,
    tls: Option<&UpstreamTls>,
) -> Option<Box<dyn HealthCheck + Send + Sync>> {
    let timeout = Some(spec.timeout.0);
    let sni = tls.map(|t| t.sni.as_deref().unwrap_or(&backend.host));
    match spec.kind {
        HealthCheckKind::Tcp => {
            let mut probe = match (sni, tls) {
                (Some(sni), Some(tls)) => {
                    let mut probe = TcpHealthCheck::new_tls(sni);
                    tls.apply_options(&mut probe.peer_template.options);
                    probe
                }
                _ => TcpHealthCheck::new(),
            };
            probe.peer_template.options.connection_timeout = timeout;
            Some(probe)
        }
        HealthCheckKind::Http => {
            let host = spec.host.as_deref().unwrap_or(&backend.label);
            let mut probe = HttpHealthCheck::new(host, tls.is_some());
            if let (Some(sni), Some(tls)) = (sni, tls) {
                probe.peer_template.sni = sni.to_owned();
                tls.apply(&mut probe.peer_template);
            }
            probe.req.set_uri(spec.path.parse().ok()?);
            probe.peer_template.options.connection_timeout = timeout;
            probe.peer_template.options.read_timeout = timeout;
            probe.peer_template.options.write_timeout = timeout;
            let expect = spec.expect_status.clone();
            probe.validator = Some(Box::new(move |resp| {
                let status = resp.status.as_u16();
                if expect.contains(&status) {
                    Ok(())
                } else {
                    Err(Error::explain(
                        ErrorType::CustomCode("unexpected health status", status),
                        "health check",
                    ))
                }
            }));
            Some(Box::new(probe))
        }
        HealthCheckKind::Grpc => None,
    }
}
