//! `touchstone params`: the built-in parameter sets and what each one holds.

use crate::format::Table;
use anyhow::{Context, Result};
use clap::Args;
use protocol::layout::BlindTouchLayout;
use protocol::{ParamSpec, SchemeKind, SyntheticSpec, Workload};

#[derive(Args, Debug)]
pub struct ParamsArgs {
    /// Also choose a set for this scheme (`--params auto` in `match` and `params: auto` in
    /// configs make the same choice for the model actually run): the cheapest secure set
    /// whose t holds the model's scores and whose measured noise budget keeps the margin.
    #[arg(long)]
    scheme: Option<SchemeKind>,
    /// blindtouch: with encrypted weights and mask.
    #[arg(long)]
    encrypted_weights: bool,
    /// Template quantization bits of the model the choice is for (synthetic head).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(2..=16))]
    bits: u32,
    /// Weight quantization bits of that model.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(2..=16))]
    weight_bits: u32,
}

/// Template length every built-in layout is sized for.
const FEATURES: usize = 16;

pub fn run(args: &ParamsArgs) -> Result<()> {
    let mut table = Table::new(&[
        "name",
        "N",
        "moduli (bits)",
        "log2 Q",
        "t",
        "log2 t",
        "128-bit bound",
        "secure",
        "slots",
        "users/ct blindtouch",
        "users/ct columnar",
    ]);
    for spec in ParamSpec::presets() {
        let p = spec.build()?;
        let bt = BlindTouchLayout::new(p.degree(), FEATURES)?;
        table.row(vec![
            p.name().to_string(),
            p.degree().to_string(),
            format!("{:?}", spec.moduli_bits),
            format!("{:.1}", p.log2_q()),
            p.plaintext().to_string(),
            format!("{:.1}", (p.plaintext() as f64).log2()),
            p.security_bound().map_or("none".into(), |b| b.to_string()),
            if p.insecure() { "NO" } else { "yes" }.to_string(),
            p.degree().to_string(),
            bt.users_per_ciphertext().to_string(),
            p.degree().to_string(),
        ]);
    }
    println!("{}", table.render());
    println!(
        "\nSecurity: HomomorphicEncryption.org 128-bit table, ternary-secret column; \
         users/ct for {FEATURES}-value templates."
    );
    if let Some(scheme) = args.scheme {
        let layout = protocol::choose::layout_of(scheme, args.encrypted_weights)
            .context("--scheme must be an encrypted scheme (blindtouch, columnar)")?;
        let model = Workload::synthetic(&SyntheticSpec {
            bits: args.bits,
            weight_bits: args.weight_bits,
            ..SyntheticSpec::new(4, 1, 1)
        })?
        .quantized;
        println!(
            "\nChoice for {scheme}{} with a synthetic {FEATURES}-feature head, {}-bit templates, \
             {}-bit weights (score bound ±{}):",
            if args.encrypted_weights {
                " (encrypted weights)"
            } else {
                ""
            },
            args.bits,
            args.weight_bits,
            model.score_bound()
        );
        let choice = protocol::choose::choose(layout, &model)?;
        for line in protocol::choose::describe(&choice.candidates) {
            println!("  {line}");
        }
        println!("chosen: {}", choice.spec.name);
    }
    Ok(())
}
