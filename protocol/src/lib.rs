//! Encrypted 1:N template matching.
//!
//! A [`roles::Client`] quantizes 16-value templates ([`quantize`]), packs them into BFV
//! plaintext slots ([`layout`]) and encrypts them under a validated parameter set
//! ([`params`]). A [`roles::MainServer`] shards the encrypted gallery over
//! [`roles::ClusterServer`]s through a [`transport::Transport`]; the clusters evaluate
//! Σⱼ w̃ⱼ (q̃ⱼ − r̃ⱼ)² homomorphically ([`evaluate`]); the main server compresses their
//! results; the client decrypts, decides and ranks ([`outcome`]). Every message crosses
//! roles as sealed bytes ([`wire`], [`messages`]). [`scheme`] puts the encrypted
//! deployments and the plaintext references behind one [`scheme::Matcher`] trait.
//!
//! Invariant: every encrypted scheme's decrypted scores equal
//! [`quantize::integer_score`] bit for bit.
#![warn(missing_docs)]

pub mod choose;
pub mod engine;
pub mod error;
pub mod evaluate;
pub mod exactness;
pub mod fused;
pub mod layout;
pub mod limits;
pub mod messages;
pub mod outcome;
pub mod params;
pub mod quantize;
pub mod roles;
pub mod rq_wire;
pub mod scheme;
pub mod synthetic;
pub mod transport;
pub mod wire;
pub mod workload;

pub use engine::{ColumnarEngine, ResolvedEngine};
pub use error::{ProtocolError, Result};
pub use exactness::{Reference, Tally};
pub use outcome::{Decision, EnrolmentReport, MatchOutcome, Scores, StageTimings, Traffic};
pub use params::{ParamSpec, Params, PlaintextModulus};
pub use quantize::{Calibration, MatchModel, QuantizedModel, Quantizer};
pub use scheme::{build_matcher, EncryptedMatcher, Matcher, SchemeConfig, SchemeKind};
pub use workload::{Source, SyntheticSpec, Workload};
