//! The names the liveness probes and their check share: the harness that sends the
//! probes (simulated or real) and the `liveness` check that judges them.

use std::time::Duration;

/// The pseudo-client whose operations are the probes.
pub const PROBE: &str = "probe";

/// `liveness` deadline when the check gives no `within`.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(10);
