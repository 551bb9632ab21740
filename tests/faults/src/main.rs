//! `faults`: the fault-injection suite's command (see `docs/faults.md`).
//! Run it through `./scripts/faults [--short|--full] [--seed N]`, which
//! exports the stack's environment. Exits 0 on a pass, 1 when anything was
//! lost, duplicated or failed, 2 when the run could not be made.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match faults::cli::parse(&args) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("faults: {e}\n{}", faults::cli::USAGE);
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "faults: seed {} (replay: {})",
        cli.options.seed, cli.options.replay
    );
    match faults::run::run(&cli.options).await {
        Ok(report) => faults::cli::finish(&report, &cli.report),
        Err(e) => {
            eprintln!("faults: FAILED, the run could not be made: {e:#}");
            ExitCode::from(2)
        }
    }
}
