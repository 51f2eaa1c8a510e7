//! The streaming featurizer in Rust (issue 9): MARKET_DATA ticks in, one FeatureUpdate per symbol
//! per second out, held to the batch path by the BAC parity test.
//!
//! - [`feature_set`]: `contracts/feature_sets/tick_v2.json` embedded at build time (generated from
//!   the Python registry: order, kinds, windows, parameters, tolerances, version);
//! - [`plan`] and [`state`]: ports of `feature_store/streaming/plan.py` and `state.py` with the same
//!   floating-point operations in the same order (compensated window sums), sessions from a file
//!   that Python writes from the exchange calendar;
//! - [`wire`]: market-data JSON in, FeatureUpdate JSON out;
//! - [`checkpoint`]: the state stored in NATS with the MARKET_DATA sequence it includes;
//! - [`service`]: NATS wiring (ordered consumer on MARKET_DATA, restart from a checkpoint, heartbeat).

pub mod checkpoint;
pub mod feature_set;
pub mod plan;
pub mod service;
pub mod state;
pub mod wire;
