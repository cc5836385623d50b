//! The experiment harness: YAML configs with sweeps ([`config`], [`sweep`]), the runner
//! with resume ([`run`]), deployed points' servers and clients ([`deployment`]), rows
//! and their export ([`rows`]), summaries and figures ([`report`], [`figures`]), provenance ([`manifest`]), the studies that are not sweeps ([`compare_study`], [`bpkem_study`], [`pipeline_study`]), the regression gate
//! ([`regress`]), and sweeps split over several processes or machines ([`shard`],
//! [`merge`], [`slurm`]).

pub mod atomic;
pub mod bpkem_study;
pub mod compare_study;
pub mod config;
pub mod deployment;
pub mod figures;
pub mod machine;
pub mod manifest;
pub mod merge;
pub mod pipeline_study;
pub mod regress;
pub mod report;
pub mod rows;
pub mod run;
pub mod shard;
pub mod slurm;
pub mod study;
pub mod sweep;
