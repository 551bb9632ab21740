//! The command line: `faults [--short|--full] [--seed N] [--only KINDS]
//! [--report PATH]`, parsed into [`Options`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::faults::{Class, Fault};
use crate::report::Report;
use crate::run::Options;
use crate::schedule::{self, Mode};

/// Where the report is saved unless `--report` says otherwise.
pub const DEFAULT_REPORT: &str = "/var/tmp/todo-events/artifacts/faults-report.md";

pub const USAGE: &str = "usage: faults [--short|--full] [--seed N] [--each] [--only KINDS] [--report PATH]
  --short        CI's run: ~1,000 operations, a function, a daprd, and one shared kind
                 rotated by the seed: kafka, postgres, scheduler, audit-db-stall (default)
  --full         10,000 operations, 200 users, 200 sockets, every fault kind 3 times
  --seed N       replay the fault order (and the workloads' choices) of seed N
  --each         inject every admitted kind once (with --only: aim a run at some kinds)
  --only KINDS   comma-separated fault kinds or classes: app, daprd, infra, stall,
                 app-audit, daprd-task-api, kafka, scheduler, postgres, audit-db-stall, ...
  --report PATH  where the Markdown report goes (default /var/tmp/todo-events/artifacts/faults-report.md)";

/// The parsed command line.
#[derive(Debug, Clone)]
pub struct Cli {
    pub options: Options,
    pub report: PathBuf,
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Cli, String> {
    let mut mode = Mode::Short;
    let mut seed = None;
    let mut only = None;
    let mut each = false;
    let mut report = PathBuf::from(DEFAULT_REPORT);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--short" => mode = Mode::Short,
            "--full" => mode = Mode::Full,
            "--seed" => {
                let value = it.next().ok_or("--seed needs a number")?;
                seed = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| format!("bad seed {value:?}"))?,
                );
            }
            "--each" => each = true,
            "--only" => only = Some(kinds(it.next().ok_or("--only needs a list")?)?),
            "--report" => report = PathBuf::from(it.next().ok_or("--report needs a path")?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let seed = seed.unwrap_or_else(schedule::fresh_seed);
    let mut replay = format!("./scripts/faults {} --seed {seed}", mode.flag());
    if each {
        replay.push_str(" --each");
    }
    if let Some(list) = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
    {
        replay.push_str(&format!(" --only {list}"));
    }
    Ok(Cli {
        options: Options {
            mode,
            seed,
            only,
            each,
            replay,
        },
        report,
    })
}

/// A comma-separated list of kinds (`app-audit`) or classes (`app`).
fn kinds(list: &str) -> Result<Vec<Fault>, String> {
    let mut out = vec![];
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let class = match item {
            "app" => Some(Class::Function),
            "daprd" => Some(Class::Sidecar),
            "infra" => Some(Class::Infra),
            "stall" => Some(Class::Stall),
            _ => None,
        };
        match class {
            Some(c) => out.extend(Fault::all().into_iter().filter(|f| f.class() == c)),
            None => {
                out.push(Fault::parse(item).ok_or_else(|| format!("unknown fault kind {item:?}"))?)
            }
        }
    }
    if out.is_empty() {
        return Err("--only names no fault kind".into());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Prints the report, saves it to `path`, and turns the verdict into the
/// exit code (0 pass, 1 fail).
pub fn finish(report: &Report, path: &Path) -> ExitCode {
    let markdown = report.markdown();
    println!("{markdown}");
    let saved = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(path, &markdown));
    match saved {
        Ok(()) => eprintln!("faults: report saved to {}", path.display()),
        Err(e) => eprintln!(
            "faults: could not save the report to {}: {e}",
            path.display()
        ),
    }
    let (lost, duplicated) = report.totals();
    if report.passed() {
        eprintln!("faults: PASSED (seed {})", report.seed);
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "faults: FAILED (lost {lost}, duplicated {duplicated}); replay: {}",
            report.replay
        );
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Function;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_replay_command_carries_mode_seed_and_kinds() {
        let cli = parse(&args(&["--full", "--seed", "42", "--only", "app,kafka"])).expect("cli");
        assert_eq!(cli.options.mode, Mode::Full);
        assert_eq!(cli.options.seed, 42);
        assert_eq!(
            cli.options.replay,
            "./scripts/faults --full --seed 42 --only app,kafka"
        );
        let only = cli.options.only.expect("only");
        assert_eq!(only.len(), 6);
        assert!(only.contains(&Fault::App(Function::Notification)) && only.contains(&Fault::Kafka));
    }

    #[test]
    fn defaults_and_refusals() {
        let cli = parse(&[]).expect("cli");
        assert_eq!(cli.options.mode, Mode::Short);
        assert!(cli.options.only.is_none());
        assert_eq!(cli.report, PathBuf::from(DEFAULT_REPORT));
        assert!(
            cli.options
                .replay
                .starts_with("./scripts/faults --short --seed ")
        );
        assert!(parse(&args(&["--seed", "x"])).is_err());
        assert!(parse(&args(&["--only", "mailpit"])).is_err());
        assert!(parse(&args(&["--fast"])).is_err());
    }
}
