//! Measurement and what is decided from it: the per-isolate recorder, batches and Prometheus
//! text (`metrics`), experiment results (`experiments`), the statistics they use (`stats`),
//! and guarded rollouts' gates and decisions (`rollout`).

pub(crate) mod experiments;
pub mod metrics;
pub mod rollout;
pub(crate) mod stats;
