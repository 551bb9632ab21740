//! CPU accounting of the local stack's processes, for `cpu_per_create`:
//! which processes make up the stack, their CPU time read from
//! `/proc/<pid>/stat`, and what a window between two samples cost each.
//!
//! - Processes: every pid file under `$TODO_EVENTS_RUN/pids` (functions,
//!   daprds, Kafka, the scheduler, mailpit; `scripts/lib/common.sh`
//!   `start_bg`), plus PostgreSQL's postmaster (`pgdata/postmaster.pid`)
//!   and its children: background processes by their title, backends by
//!   the stack process at the other end of their connection.
//! - Backends come and go. A child that exits hands its whole lifetime's
//!   CPU to the postmaster's `cutime`/`cstime`, so a window counts the
//!   postmaster's children-time growth minus what vanished children had
//!   already used at the first sample ([`window`]).
//! - Backends of clients that are not stack processes (tests of other
//!   engineers, this tool's own probe) are reported apart and left out of
//!   the total.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// A process instance: a pid can be reused, its start time cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcId {
    pub pid: u32,
    pub start: u64,
}

/// The fields of `/proc/<pid>/stat` this tool needs, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub ppid: u32,
    pub own: u64,
    pub children: u64,
    pub start: u64,
}

/// Parses `/proc/<pid>/stat`. The command name is in parentheses and may
/// hold spaces or parentheses, so fields are counted after the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        ppid: u32::try_from(n(1)?).ok()?,
        own: n(11)? + n(12)?,
        children: n(13)? + n(14)?,
        start: n(19)?,
    })
}

/// One process as sampled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub id: ProcId,
    /// The row it is reported under (`daprd-audit`, `postgres: walwriter`,
    /// `postgres backends ← task-api`, …).
    pub label: String,
    /// False for backends of clients outside the stack.
    pub counted: bool,
    /// Own utime + stime.
    pub own: u64,
    /// Exited children's time (the postmaster only).
    pub children: u64,
    pub postgres_child: bool,
}

/// All stack processes at one moment.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub procs: BTreeMap<ProcId, Proc>,
    pub postmaster: Option<ProcId>,
}

/// The CPU one window cost, in ticks per label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    pub counted: BTreeMap<String, u64>,
    pub excluded: BTreeMap<String, u64>,
    /// Stack processes (not PostgreSQL children) that exited or restarted
    /// during the window: the figures miss part of their work.
    pub restarted: Vec<String>,
}

/// Label of the postmaster's exited children's time.
pub const EXITED: &str = "postgres: exited children (short backends, autovacuum workers)";

/// What `before` → `after` cost each label.
pub fn window(before: &Sample, after: &Sample) -> Window {
    let mut w = Window::default();
    let mut add = |p: &Proc, ticks: u64| {
        let map = if p.counted {
            &mut w.counted
        } else {
            &mut w.excluded
        };
        *map.entry(p.label.clone()).or_default() += ticks;
    };
    for (id, p) in &after.procs {
        let was = before.procs.get(id).map_or(0, |b| b.own);
        add(p, p.own.saturating_sub(was));
    }
    let mut exited = match (before.postmaster, after.postmaster) {
        (Some(b), Some(a)) if a == b => {
            let children = |s: &Sample| s.procs.get(&a).map_or(0, |p| p.children);
            children(after).saturating_sub(children(before))
        }
        _ => 0,
    };
    for (id, p) in &before.procs {
        if after.procs.contains_key(id) {
            continue;
        }
        if p.postgres_child {
            exited = exited.saturating_sub(p.own);
        } else {
            w.restarted.push(p.label.clone());
        }
    }
    if after.postmaster.is_some() {
        *w.counted.entry(EXITED.to_owned()).or_default() += exited;
    }
    w
}

/// Where the stack keeps its pid files and data (`scripts/lib/common.sh`).
pub fn run_dir() -> PathBuf {
    std::env::var_os("TODO_EVENTS_RUN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/todo-events"))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

fn read_stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

/// The stack's named processes: `(label, pid)` from the pid files.
pub fn named_pids(run: &Path) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(run.join("pids")) else {
        return out;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(label) = name.strip_suffix(".pid") else {
            continue;
        };
        if let Some(pid) = std::fs::read_to_string(entry.path())
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            out.push((label.to_owned(), pid));
        }
    }
    out.sort();
    out
}

/// The postmaster's pid: the first line of `pgdata/postmaster.pid`.
pub fn postmaster_pid(run: &Path) -> Option<u32> {
    std::fs::read_to_string(run.join("pgdata/postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// A backend's client port from its title
/// (`postgres: todo todo 127.0.0.1(40130) idle`).
pub fn backend_client_port(title: &str) -> Option<u16> {
    let open = title.find("127.0.0.1(").map(|i| i + "127.0.0.1(".len())?;
    let close = title[open..].find(')')? + open;
    title[open..close].parse().ok()
}

/// Socket inodes of `(local port, remote port)` TCP connections, from
/// `/proc/net/tcp` text (addresses are hex `ADDR:PORT`).
pub fn tcp_inodes(text: &str) -> HashMap<u64, (u16, u16)> {
    let port = |a: &str| {
        a.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            Some((
                f.get(9)?.parse().ok()?,
                (port(f.get(1)?)?, port(f.get(2)?)?),
            ))
        })
        .collect()
}

fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let link = std::fs::read_link(e.path()).ok()?;
            let link = link.to_string_lossy();
            link.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// Which stack process holds the client end of each PostgreSQL connection:
/// client port → label.
fn pg_clients(named: &[(String, u32)], pg_port: u16) -> HashMap<u16, String> {
    let mut tcp = HashMap::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        tcp.extend(tcp_inodes(
            &std::fs::read_to_string(file).unwrap_or_default(),
        ));
    }
    let mut out = HashMap::new();
    for (label, pid) in named {
        for inode in socket_inodes(*pid) {
            if let Some((local, remote)) = tcp.get(&inode)
                && *remote == pg_port
            {
                out.insert(*local, label.clone());
            }
        }
    }
    out
}

/// The postmaster's children: `(pid, stat)`.
fn children_of(parent: u32) -> Vec<(u32, Stat)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, read_stat(pid)?)))
        .filter(|(_, s)| s.ppid == parent)
        .collect()
}

/// Reads every stack process now.
pub fn sample(run: &Path, pg_port: u16) -> Sample {
    let named = named_pids(run);
    let mut s = Sample::default();
    for (label, pid) in &named {
        if let Some(st) = read_stat(*pid) {
            let id = ProcId {
                pid: *pid,
                start: st.start,
            };
            let proc = Proc {
                id,
                label: label.clone(),
                counted: true,
                own: st.own,
                children: 0,
                postgres_child: false,
            };
            s.procs.insert(id, proc);
        }
    }
    let Some(pm) = postmaster_pid(run) else {
        return s;
    };
    let Some(pm_stat) = read_stat(pm) else {
        return s;
    };
    let pm_id = ProcId {
        pid: pm,
        start: pm_stat.start,
    };
    s.postmaster = Some(pm_id);
    let postmaster = Proc {
        id: pm_id,
        label: "postgres: postmaster".into(),
        counted: true,
        own: pm_stat.own,
        children: pm_stat.children,
        postgres_child: false,
    };
    s.procs.insert(pm_id, postmaster);
    let clients = pg_clients(&named, pg_port);
    for (pid, st) in children_of(pm) {
        let title = cmdline(pid);
        let (label, counted) = match backend_client_port(&title) {
            Some(port) => match clients.get(&port) {
                Some(client) => (format!("postgres backends ← {client}"), true),
                None => (
                    "postgres backends ← clients outside the stack".to_owned(),
                    false,
                ),
            },
            None => (
                title
                    .split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" "),
                true,
            ),
        };
        let id = ProcId {
            pid,
            start: st.start,
        };
        s.procs.insert(
            id,
            Proc {
                id,
                label,
                counted,
                own: st.own,
                children: 0,
                postgres_child: true,
            },
        );
    }
    s
}

/// Which build a process runs: `release`/`debug` for the functions' cargo
/// binaries, else empty.
pub fn profile_of(pid: u32) -> &'static str {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    let exe = exe.to_string_lossy();
    if exe.contains("/release/") {
        "release"
    } else if exe.contains("/debug/") {
        "debug"
    } else {
        ""
    }
}

/// Sums `pidstat -u -h` lines (one per pid per interval) into CPU ms per
/// pid, with the number of intervals: each line's `%CPU` is a percentage
/// of its interval. pidstat reports whole intervals only, so compare rates
/// (ms per second of the intervals it covered), not totals.
pub fn pidstat_ms(text: &str, interval_s: f64) -> HashMap<u32, (f64, u32)> {
    let mut header: Vec<String> = Vec::new();
    let mut out = HashMap::new();
    for line in text.lines() {
        if let Some(h) = line.strip_prefix('#') {
            header = h.split_whitespace().map(str::to_owned).collect();
            continue;
        }
        let col = |name: &str| header.iter().position(|h| h == name);
        let (Some(pid_col), Some(cpu_col)) = (col("PID"), col("%CPU")) else {
            continue;
        };
        let f: Vec<&str> = line.split_whitespace().collect();
        let pid = f.get(pid_col).and_then(|v| v.parse::<u32>().ok());
        let cpu = f.get(cpu_col).and_then(|v| v.parse::<f64>().ok());
        if let (Some(pid), Some(cpu)) = (pid, cpu) {
            let entry: &mut (f64, u32) = out.entry(pid).or_default();
            entry.0 += cpu / 100.0 * interval_s * 1000.0;
            entry.1 += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(pid: u32, label: &str, own: u64, children: u64, pg: bool, counted: bool) -> Proc {
        let id = ProcId { pid, start: 7 };
        Proc {
            id,
            label: label.into(),
            counted,
            own,
            children,
            postgres_child: pg,
        }
    }

    fn sample(procs: Vec<Proc>) -> Sample {
        let postmaster = procs.iter().find(|p| p.label == "pm").map(|p| p.id);
        Sample {
            procs: procs.into_iter().map(|p| (p.id, p)).collect(),
            postmaster,
        }
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let text = "42 (postgres: todo (x) y) S 14292 42 42 0 -1 4194560 300 0 0 0 \
                    17 5 3 2 20 0 1 0 9001 1000 100";
        let s = parse_stat(text).unwrap();
        assert_eq!(
            s,
            Stat {
                ppid: 14292,
                own: 22,
                children: 5,
                start: 9001
            }
        );
        assert_eq!(parse_stat("1 (x) S 0"), None);
    }

    #[test]
    fn a_backend_that_exits_counts_only_its_time_inside_the_window() {
        let before = sample(vec![
            proc(1, "pm", 10, 100, false, true),
            proc(2, "b", 40, 0, true, true),
            proc(3, "daprd", 5, 0, false, true),
        ]);
        // Backend 2 used 6 more ticks and exited: cutime grows by its
        // whole life (46); a new backend 4 used 3 and is still there.
        let after = sample(vec![
            proc(1, "pm", 11, 146, false, true),
            proc(4, "b", 3, 0, true, true),
            proc(3, "daprd", 9, 0, false, true),
        ]);
        let w = window(&before, &after);
        assert_eq!(w.counted[EXITED], 6);
        assert_eq!(w.counted["b"], 3);
        assert_eq!(w.counted["daprd"], 4);
        assert_eq!(w.counted["pm"], 1);
        assert!(w.restarted.is_empty());
    }

    #[test]
    fn outside_clients_are_excluded_and_restarts_reported() {
        let before = sample(vec![
            proc(5, "other", 1, 0, true, false),
            proc(6, "app", 9, 0, false, true),
        ]);
        let after = sample(vec![proc(5, "other", 8, 0, true, false)]);
        let w = window(&before, &after);
        assert_eq!(w.excluded["other"], 7);
        assert_eq!(w.restarted, ["app"]);
        assert!(!w.counted.contains_key("other"));
    }

    #[test]
    fn connections_and_titles_parse() {
        assert_eq!(
            backend_client_port("postgres: todo todo 127.0.0.1(40130) idle"),
            Some(40130)
        );
        assert_eq!(backend_client_port("postgres: walwriter"), None);
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
                   0: 0100007F:9CC2 0100007F:1538 01 00000000:00000000 00:00000000 00000000     0        0 123456 1";
        assert_eq!(tcp_inodes(tcp)[&123456], (40130, 5432));
    }

    #[test]
    fn pidstat_lines_sum_per_pid() {
        let text = "Linux 6.1\n\n# Time UID PID %usr %system %guest %wait %CPU CPU Command\n\
                    1700000000 0 18433 1.00 1.00 0.00 0.00 2.00 1 daprd\n\
                    1700000001 0 18433 3.00 1.00 0.00 0.00 4.00 0 daprd\n";
        let ms = pidstat_ms(text, 1.0);
        assert!((ms[&18433].0 - 60.0).abs() < 1e-9);
        assert_eq!(ms[&18433].1, 2);
    }
}
