//! `faults`: the fault-injection suite's command (see `docs/faults.md`).
//! Run it through `./scripts/faults [--short|--full] [--seed N]`, which
//! exports the stack's environment.

fn main() {
    eprintln!("faults: the orchestrator is being built (issue 13)");
    std::process::exit(2);
}
