//! The figures of one run: per server, latency (hdrhistogram) and memory
//! per idle socket; the gateway/Centrifugo ratios; the printed table and the
//! JSON that scripts/bench folds into docs/benchmarks.md (shape agreed in
//! the team's bench notes: `workload`, `gateway`, `centrifugo`, `ratio`).

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// What one server did in the run.
pub struct Side {
    pub label: String,
    pub latency: Histogram<u64>,
    pub delivered: usize,
    pub duplicates: usize,
    pub rss_before_kib: u64,
    pub rss_idle_kib: u64,
    pub sockets: usize,
}

impl Side {
    pub fn new(label: String, sockets: usize) -> Self {
        Self {
            label,
            latency: Histogram::new(3).unwrap_or_else(|_| unreachable!("3 digits are valid")),
            delivered: 0,
            duplicates: 0,
            rss_before_kib: 0,
            rss_idle_kib: 0,
            sockets,
        }
    }

    fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn kib_per_socket(&self) -> f64 {
        self.rss_idle_kib.saturating_sub(self.rss_before_kib) as f64 / self.sockets.max(1) as f64
    }

    fn json(&self) -> Value {
        json!({
            "label": self.label,
            "delivered": self.delivered,
            "duplicates": self.duplicates,
            "latency_ms": {"p50": self.ms(0.5), "p99": self.ms(0.99),
                           "max": self.latency.max() as f64 / 1000.0},
            "rss_kib": {"before": self.rss_before_kib, "idle": self.rss_idle_kib},
            "kib_per_socket": self.kib_per_socket(),
        })
    }
}

/// `a / b`, or None when `b` is zero (no figure to compare with).
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// The workload, as run.
pub struct Workload {
    pub sockets: usize,
    pub users: usize,
    pub writes: usize,
    pub rate: f64,
    pub expected: usize,
    pub seconds: f64,
    /// Per write, gateway's last socket receive minus Centrifugo's (µs).
    pub paired_us: Vec<i64>,
}

/// The `q` quantile (nearest rank) of signed µs values, in ms.
pub fn signed_ms(values_us: &[i64], q: f64) -> Option<f64> {
    let mut sorted = values_us.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).map(|v| *v as f64 / 1000.0)
}

/// The share of writes whose last socket receive came earlier on the gateway.
fn gateway_first(values_us: &[i64]) -> Option<f64> {
    let n = values_us.len();
    (n > 0).then(|| values_us.iter().filter(|d| **d < 0).count() as f64 / n as f64)
}

pub fn to_json(w: &Workload, gateway: &Side, centrifugo: &Side) -> Value {
    json!({
        "workload": {"sockets": w.sockets, "users": w.users, "writes": w.writes,
                     "rate_per_s": w.rate, "deliveries_expected": w.expected,
                     "seconds": w.seconds},
        "gateway": gateway.json(),
        "centrifugo": centrifugo.json(),
        "ratio": {
            "p50": ratio(gateway.ms(0.5), centrifugo.ms(0.5)),
            "p99": ratio(gateway.ms(0.99), centrifugo.ms(0.99)),
            "kib_per_socket": ratio(gateway.kib_per_socket(), centrifugo.kib_per_socket()),
        },
        "paired_ms": {
            "writes": w.paired_us.len(),
            "p50": signed_ms(&w.paired_us, 0.5),
            "p99": signed_ms(&w.paired_us, 0.99),
            "gateway_first_share": gateway_first(&w.paired_us),
        },
        "feed": "both from the same task-updates records: the gateway through its daprd, \
                 Centrifugo through its own Kafka consumer (publication data mode, channel \
                 from the partitionKey header)",
    })
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

/// The side-by-side table.
pub fn print(w: &Workload, gateway: &Side, centrifugo: &Side) {
    println!(
        "{} sockets per server over {} users; {} writes at {:.0}/s; {} deliveries expected per server",
        w.sockets, w.users, w.writes, w.rate, w.expected
    );
    println!(
        "{:<34} {:>12} {:>12} {:>10}",
        "", "gateway", "centrifugo", "ratio g/c"
    );
    let row = |name: &str, g: f64, c: f64| {
        println!("{name:<34} {g:>12.1} {c:>12.1} {:>10}", cell(ratio(g, c)))
    };
    row(
        "write → receive p50 (ms)",
        gateway.ms(0.5),
        centrifugo.ms(0.5),
    );
    row(
        "write → receive p99 (ms)",
        gateway.ms(0.99),
        centrifugo.ms(0.99),
    );
    row(
        "write → receive max (ms)",
        gateway.latency.max() as f64 / 1000.0,
        centrifugo.latency.max() as f64 / 1000.0,
    );
    row(
        "RSS per idle socket (KiB)",
        gateway.kib_per_socket(),
        centrifugo.kib_per_socket(),
    );
    row(
        "RSS idle with sockets (MiB)",
        gateway.rss_idle_kib as f64 / 1024.0,
        centrifugo.rss_idle_kib as f64 / 1024.0,
    );
    println!(
        "{:<34} {:>12} {:>12}",
        "deliveries (duplicates)",
        format!("{} ({})", gateway.delivered, gateway.duplicates),
        format!("{} ({})", centrifugo.delivered, centrifugo.duplicates)
    );
    println!(
        "same record, gateway's last socket minus Centrifugo's (ms): p50 {}, p99 {} \
         over {} writes; the gateway first in {}",
        cell(signed_ms(&w.paired_us, 0.5)),
        cell(signed_ms(&w.paired_us, 0.99)),
        w.paired_us.len(),
        gateway_first(&w.paired_us).map_or_else(|| "-".into(), |s| format!("{:.0}%", s * 100.0)),
    );
    println!(
        "gateway: {}; centrifugo: {}",
        gateway.label, centrifugo.label
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(values_us: &[u64], before: u64, idle: u64, sockets: usize) -> Side {
        let mut s = Side::new("x".into(), sockets);
        for v in values_us {
            s.latency.record(*v).unwrap();
        }
        s.rss_before_kib = before;
        s.rss_idle_kib = idle;
        s
    }

    #[test]
    fn ratios_are_gateway_over_centrifugo() {
        let g = side(&[10_000; 10], 1000, 3000, 100);
        let c = side(&[20_000; 10], 1000, 9000, 100);
        let j = to_json(
            &Workload {
                sockets: 100,
                users: 10,
                writes: 10,
                rate: 5.0,
                expected: 100,
                seconds: 2.0,
                paired_us: vec![-3000, 1000, 2000, -1000],
            },
            &g,
            &c,
        );
        assert_eq!(j["gateway"]["kib_per_socket"], 20.0);
        assert_eq!(j["centrifugo"]["kib_per_socket"], 80.0);
        assert_eq!(j["ratio"]["kib_per_socket"], 0.25);
        let p50 = j["ratio"]["p50"].as_f64().unwrap();
        assert!((p50 - 0.5).abs() < 0.01, "{p50}");
        assert_eq!(j["paired_ms"]["p50"], -1.0);
        assert_eq!(j["paired_ms"]["p99"], 2.0);
        assert_eq!(j["paired_ms"]["gateway_first_share"], 0.5);
    }

    #[test]
    fn signed_quantiles_by_nearest_rank() {
        assert_eq!(signed_ms(&[], 0.5), None);
        assert_eq!(signed_ms(&[5000], 0.99), Some(5.0));
        let v: Vec<i64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(signed_ms(&v, 0.5), Some(50.0));
        assert_eq!(signed_ms(&v, 0.99), Some(99.0));
    }

    #[test]
    fn no_ratio_against_zero_and_rss_that_fell_counts_as_zero() {
        assert_eq!(ratio(1.0, 0.0), None);
        let s = side(&[], 5000, 4000, 10);
        assert_eq!(s.kib_per_socket(), 0.0);
    }
}
