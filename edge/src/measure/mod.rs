//! Measurement and what is decided from it: the per-isolate recorder, batches and Prometheus
//! text (`metrics`), experiment results (`experiments`), the statistics they use (`stats`),
//! and guarded rollouts' gates and decisions (`rollout`).

pub mod experiments;
pub mod metrics;
pub mod rollout;
pub mod stats;
