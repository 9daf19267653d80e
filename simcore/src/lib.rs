//! What a simulated run (`sim run`) and a real one (`sim real`) share, in plain code that
//! builds with and without `--cfg madsim`: the [`scenario`] file, the recorded
//! [`history`], every [`check`] (and the [`linearizability`] search behind one), the
//! [`report`] and the [`timeline`] picture, and the clients that drive a cluster: the
//! [`workload`] and the liveness probes ([`probe`]), which reach the servers at
//! [`addresses`] given as a value. Checkers read only the history, so one
//! recorded by real processes is judged exactly as a simulated one. The [`network`]
//! model (cut links, loss, latency) is the one the simulator, the checkers' replay and
//! the real fault proxy all apply faults to.

pub mod addresses;
pub mod check;
pub mod damage;
pub mod digest;
pub mod history;
pub mod kv_plan;
pub mod linearizability;
pub mod nemesis;
pub mod network;
pub mod probe;
pub mod real_options;
pub mod recorded;
pub mod report;
pub mod scenario;
pub mod scenario_toml;
pub mod selectors;
pub mod timeline;
pub mod workload;
