//! Placement at scale: issue 16's simulation (500 nodes, 20,000 tasks of mixed cost arriving and leaving, nodes
//! draining, dying and joining; `tessera::cluster::sim`), timed. Prints the time per placement (mean, p99, most)
//! in microseconds and max ÷ mean utilisation, for docs/cluster.md.
//!
//! ```sh
//! cargo bench --bench placement                  # the full run, release build, a few seconds
//! cargo bench --bench placement -- --seed 7      # another seed
//! ```
//!
//! Without `--bench` on its command line (as `cargo test --all-targets` runs it) it is a smoke run of a few
//! milliseconds (20 nodes, 800 tasks) so the bench cannot rot; its figures mean nothing.

use tessera::cluster::sim::{run, Config};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    let mut config = if full {
        Config::issue_16()
    } else {
        Config::smoke()
    };
    if let Some(seed) = args
        .iter()
        .position(|a| a == "--seed")
        .and_then(|i| args.get(i + 1))
    {
        config.seed = seed.parse().expect("--seed takes a number");
    }
    let report = run(&config);
    println!("{report}");
    println!(
        "placement: {:.2} µs mean, {:.2} µs p99, {:.1} µs most per placement over {} nodes; max ÷ mean utilisation {:.3} at the end, {:.3} at worst in the churn and refill",
        report.mean_ns / 1e3,
        report.p99_ns as f64 / 1e3,
        report.max_ns as f64 / 1e3,
        report.last.up,
        report.last.ratio(),
        report.worst_ratio(),
    );
    if let Err(e) = report.check() {
        eprintln!("placement: {e}");
        std::process::exit(1);
    }
}
