//! Health checks: `GET /health` on each backend every `health_interval`, on the
//! balancer's clock. Any answer below 500 within `health_timeout` means up (a 429 is a
//! busy backend, not a dead one); a 5xx, a timeout or a refused connection means down,
//! until a later check answers.

use super::Balancer;
use crate::pool::Outgoing;
use hyper::header::HeaderValue;
use hyper::Method;
use std::sync::Arc;

/// Checks backend `index` forever (the first check at once).
pub(crate) async fn watch(balancer: Arc<Balancer>, index: usize) {
    let addr = balancer.config.backends[index].addr;
    let every = balancer.config.health_interval;
    loop {
        let timeout = balancer.clock.true_duration(balancer.config.health_timeout);
        let request = Outgoing {
            method: Method::GET,
            path: "/health",
            content_type: HeaderValue::from_static("application/json"),
            body: Default::default(),
        };
        let verdict = match balancer.pool.send(addr, request, timeout).await {
            Ok(answer) if answer.status.is_server_error() => {
                Err(format!("health check answered {}", answer.status.as_u16()))
            }
            Ok(_) => Ok(()),
            Err(e) => Err(format!("health check: {e}")),
        };
        balancer.table().backends[index].health_checks += 1;
        balancer.set_health(index, verdict);
        balancer.clock.sleep(every).await;
    }
}
