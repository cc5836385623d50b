//! `touchstone params`: the built-in parameter sets and what each one holds.

use crate::format::Table;
use anyhow::Result;
use protocol::layout::BlindTouchLayout;
use protocol::ParamSpec;

/// Template length every built-in layout is sized for.
const FEATURES: usize = 16;

pub fn run() -> Result<()> {
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
    Ok(())
}
