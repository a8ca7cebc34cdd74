//! The report of a run: parameters, numbers, latency percentiles, errors, the server's memory
//! and CPU, and the goals of BENCHMARKS.md met or not. Printed as a summary, saved as JSON and
//! an SVG plot, and rendered from JSON into the Markdown tables of BENCHMARKS.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::Db;
use crate::record::{Errors, Recorder, Second, Summary};
use crate::target::{MIB, Sample, Sampler};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub scenario: String,
    pub database: String,
    /// The commit measured (`-dirty` with uncommitted changes).
    pub commit: String,
    pub machine: Machine,
    pub unix_time: u64,
    pub params: serde_json::Value,
    pub results: BTreeMap<String, f64>,
    pub latency: BTreeMap<String, Summary>,
    pub errors: Errors,
    pub server: Usage,
    pub goals: Vec<Goal>,
    pub timeline: Timeline,
}

/// Where the run ran.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cpus: usize,
    pub memory_gib: f64,
    pub kernel: String,
}

/// The server process over the run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Usage {
    pub rss_idle_mib: Option<f64>,
    pub rss_peak_mib: f64,
    pub rss_end_mib: f64,
    pub cpu_mean_percent: f64,
    pub bench_cpu_mean_percent: f64,
}

/// A goal of the issue, and how this run did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Goal {
    pub what: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Timeline {
    /// Per second since the measured part began.
    pub latency: BTreeMap<String, Vec<Second>>,
    /// Since the server started (or sampling began).
    pub process: Vec<Sample>,
}

impl Report {
    pub fn new(scenario: &str, db: Db, params: serde_json::Value) -> Self {
        Self {
            scenario: scenario.to_owned(),
            database: db.name().to_owned(),
            commit: commit(),
            machine: Machine::here(),
            unix_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            params,
            results: BTreeMap::new(),
            latency: BTreeMap::new(),
            errors: Errors::default(),
            server: Usage::default(),
            goals: Vec::new(),
            timeline: Timeline::default(),
        }
    }

    pub fn set_result(&mut self, name: &str, value: f64) {
        self.results.insert(name.to_owned(), value);
    }

    /// A result (NaN if not set).
    pub fn result(&self, name: &str) -> f64 {
        self.results.get(name).copied().unwrap_or(f64::NAN)
    }

    /// A latency summary (empty if none was recorded).
    pub fn latency(&self, name: &str) -> Summary {
        self.latency.get(name).cloned().unwrap_or_default()
    }

    pub fn goal(&mut self, what: &str, target: &str, measured: String, met: bool) {
        self.goals.push(Goal { what: what.to_owned(), target: target.to_owned(), measured, met });
    }

    /// Takes the latencies and errors of `recorder` and the samples of `sampler`.
    pub fn finish(&mut self, recorder: &Recorder, sampler: &Sampler, idle_rss: Option<u64>) {
        let (summaries, timelines, errors) = recorder.finish();
        self.latency.extend(summaries);
        self.timeline.latency.extend(timelines);
        self.errors = errors;
        let samples = sampler.samples();
        let mean = |f: fn(&Sample) -> f64| {
            if samples.is_empty() { 0.0 } else { samples.iter().map(f).sum::<f64>() / samples.len() as f64 }
        };
        self.server = Usage {
            rss_idle_mib: idle_rss.map(|b| b as f64 / MIB),
            rss_peak_mib: samples.iter().map(|s| s.rss_mib).fold(0.0, f64::max),
            rss_end_mib: samples.last().map_or(0.0, |s| s.rss_mib),
            cpu_mean_percent: mean(|s| s.cpu_percent),
            bench_cpu_mean_percent: mean(|s| s.bench_cpu_percent),
        };
        self.timeline.process = samples;
    }

    fn name(&self) -> String {
        format!("{}-{}", self.scenario, self.database)
    }

    /// The human summary.
    pub fn print(&self) {
        println!("\n== {} on {} ({})", self.scenario, self.database, self.commit);
        for (name, value) in &self.results {
            println!("  {name:<28} {}", number(*value));
        }
        for (name, s) in &self.latency {
            println!(
                "  {name:<28} n={} p50={:.2} p90={:.2} p99={:.2} p99.9={:.2} max={:.2} ms",
                s.count, s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms, s.max_ms
            );
        }
        println!(
            "  server: RSS peak {:.1} MiB, end {:.1} MiB, CPU {:.0}% (this program {:.0}%)",
            self.server.rss_peak_mib,
            self.server.rss_end_mib,
            self.server.cpu_mean_percent,
            self.server.bench_cpu_mean_percent
        );
        println!("  errors: {}", self.errors.count);
        for error in &self.errors.first {
            println!("    {error}");
        }
        for goal in &self.goals {
            let mark = if goal.met { "met" } else { "NOT met" };
            println!("  goal {}: {} (target {}) {mark}", goal.what, goal.measured, goal.target);
        }
    }

    /// Writes `<scenario>-<db>.json` and `.svg` into `dir`.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let json = dir.join(format!("{}.json", self.name()));
        std::fs::write(&json, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", json.display()))?;
        let svg = dir.join(format!("{}.svg", self.name()));
        std::fs::write(&svg, plot(self)).with_context(|| format!("writing {}", svg.display()))?;
        println!("  wrote {} and {}", json.display(), svg.display());
        Ok(())
    }

    /// What makes a smoke run fail: errors, lost or unexpected deliveries, dead sockets,
    /// nothing measured.
    pub fn smoke_failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        let name = self.name();
        if self.errors.count > 0 {
            failures.push(format!("{name}: {} errors, first: {:?}", self.errors.count, self.errors.first));
        }
        for key in ["lost_deliveries", "unexpected_deliveries"] {
            if self.results.get(key).is_some_and(|v| *v > 0.0) {
                failures.push(format!("{name}: {key} = {}", self.result(key)));
            }
        }
        if self.results.get("sockets_alive_at_end").is_some_and(|alive| *alive < self.result("sockets")) {
            failures.push(format!("{name}: sockets died"));
        }
        if self.latency.values().all(|s| s.count == 0) {
            failures.push(format!("{name}: no latency was measured"));
        }
        if (self.scenario.ends_with("fanout") || self.scenario.ends_with("guild"))
            && self.result("deliveries") < 1.0
        {
            failures.push(format!("{name}: nothing was delivered"));
        }
        let heard_enough = self
            .result("packets_heard")
            .partial_cmp(&(self.result("packets_expected") * 0.95))
            .is_some_and(|o| o.is_ge());
        if self.scenario.ends_with("voice") && !heard_enough {
            failures.push(format!(
                "{name}: heard {} of {} voice packets",
                self.result("packets_heard"),
                self.result("packets_expected")
            ));
        }
        failures
    }
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 { format!("{value:.0}") } else { format!("{value:.2}") }
}

fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        // The results themselves (BENCHMARKS.md, bench/results) do not make the code "dirty".
        Some(hash)
            if git(&[
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                "..",
                ":!../BENCHMARKS.md",
                ":!results",
            ])
            .is_some_and(|s| !s.is_empty()) =>
        {
            format!("{hash}-dirty")
        }
        Some(hash) => hash,
        None => "unknown".to_owned(),
    }
}

impl Machine {
    fn here() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_default();
        let memory_kib: f64 = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        Self {
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: (memory_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        }
    }
}

/// Three panels: latency per second, the server's memory, CPU.
fn plot(report: &Report) -> String {
    const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
    let mut latency = Vec::new();
    // Connecting happens before the measured part; its percentiles are in the tables.
    let timed = report.timeline.latency.iter().filter(|(name, _)| !name.starts_with("connect"));
    for (i, (name, seconds)) in timed.enumerate() {
        let points = |f: fn(&Second) -> f64| {
            seconds.iter().filter(|s| s.count > 0).map(|s| (s.t as f64, f(s))).collect()
        };
        latency.push((format!("{name} p50"), COLOURS[(2 * i) % 6], points(|s| s.p50_ms)));
        latency.push((format!("{name} p99"), COLOURS[(2 * i + 1) % 6], points(|s| s.p99_ms)));
    }
    let process = &report.timeline.process;
    let rss = vec![("server RSS".to_owned(), COLOURS[0], process.iter().map(|s| (s.t, s.rss_mib)).collect())];
    let cpu = vec![
        ("server".to_owned(), COLOURS[1], process.iter().map(|s| (s.t, s.cpu_percent)).collect()),
        (
            "load generator".to_owned(),
            COLOURS[2],
            process.iter().map(|s| (s.t, s.bench_cpu_percent)).collect(),
        ),
    ];
    let panels = [
        ("latency per second, ms (x: seconds since the clients connected)", latency),
        ("server resident memory, MiB (x: seconds since the server started)", rss),
        ("CPU, % of one core", cpu),
    ];
    let (width, height) = (860.0, 245.0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{}" font-family="sans-serif" font-size="11">"#,
        height * 3.0 + 30.0
    );
    let _ = write!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="18" font-size="14">{} on {} — {}</text>"#,
        report.scenario, report.database, report.commit
    );
    for (n, (title, series)) in panels.iter().enumerate() {
        panel(&mut svg, 30.0 + n as f64 * height, width, height, title, series);
    }
    svg.push_str("</svg>\n");
    svg
}

type Series = (String, &'static str, Vec<(f64, f64)>);

fn panel(svg: &mut String, top: f64, width: f64, height: f64, title: &str, series: &[Series]) {
    let (left, right, plot_top, bottom) = (60.0, width - 20.0, top + 22.0, top + height - 45.0);
    let x_max = series.iter().flat_map(|s| s.2.iter().map(|p| p.0)).fold(1.0, f64::max);
    let y_max = series.iter().flat_map(|s| s.2.iter().map(|p| p.1)).fold(0.0, f64::max).max(1e-3) * 1.1;
    let x = |v: f64| left + v / x_max * (right - left);
    let y = |v: f64| bottom - v / y_max * (bottom - plot_top);
    let _ = write!(svg, r#"<text x="{left}" y="{}" font-size="12">{title}</text>"#, top + 14.0);
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{right}" y1="{py:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{v:.1}</text>"##,
            py = y(v),
            tx = left - 4.0,
            ty = y(v) + 4.0
        );
        let t = x_max * f64::from(i) / 4.0;
        let _ =
            write!(svg, r#"<text x="{:.1}" y="{}" text-anchor="middle">{t:.0}</text>"#, x(t), bottom + 14.0);
    }
    let _ = write!(
        svg,
        r##"<rect x="{left}" y="{plot_top}" width="{}" height="{}" fill="none" stroke="#888"/>"##,
        right - left,
        bottom - plot_top
    );
    for (i, (label, colour, points)) in series.iter().enumerate() {
        let path: Vec<String> = points.iter().map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py))).collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
            path.join(" ")
        );
        // Legends in rows of four under the x axis.
        let (lx, ly) = (left + 10.0 + (i % 4) as f64 * 190.0, bottom + 21.0 + (i / 4) as f64 * 13.0);
        let _ = write!(
            svg,
            r#"<rect x="{lx}" y="{ly}" width="10" height="3" fill="{colour}"/><text x="{}" y="{}">{label}</text>"#,
            lx + 14.0,
            ly + 4.0
        );
    }
}

/// One cell of a per-run row in BENCHMARKS.md.
type Cell = fn(&Report) -> String;

/// The order of scenarios in BENCHMARKS.md.
const ORDER: [&str; 10] =
    ["fanout", "ingest", "idle", "history", "keys", "cold_start", "signin_burst", "cloud", "guild", "voice"];
const BEGIN: &str = "<!-- bench:begin -->";
const END: &str = "<!-- bench:end -->";

/// The PWA's first load, written by `pwa/e2e/first-load.spec.ts` (not a [`Report`]).
const FIRST_LOAD: &str = "first-load.json";
const FIRST_LOAD_BEGIN: &str = "<!-- first-load:begin -->";
const FIRST_LOAD_END: &str = "<!-- first-load:end -->";

/// Replaces the part of `into` between the markers with tables made from the reports in `dir`
/// (and the first-load section from `dir/first-load.json`, when there is one).
pub fn update_markdown(dir: &Path, into: &Path) -> anyhow::Result<()> {
    let mut reports = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.file_name().is_some_and(|n| n == FIRST_LOAD) {
            continue;
        }
        if path.extension().is_some_and(|e| e == "json") {
            let report: Report = serde_json::from_slice(&std::fs::read(&path)?)
                .with_context(|| format!("{} is not a report", path.display()))?;
            if ORDER.contains(&report.scenario.as_str()) {
                reports.push(report);
            }
        }
    }
    anyhow::ensure!(!reports.is_empty(), "no reports in {}", dir.display());
    reports.sort_by_key(|r| (ORDER.iter().position(|s| *s == r.scenario), r.database.clone()));
    let text = std::fs::read_to_string(into).with_context(|| format!("reading {}", into.display()))?;
    let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
        anyhow::bail!("{} has no {BEGIN} … {END} section", into.display());
    };
    let base = into.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let images = relative(dir, base);
    let tables = markdown(&reports, &images);
    let mut updated = format!("{}{BEGIN}\n{tables}{}", &text[..begin], &text[end..]);
    let first_load = dir.join(FIRST_LOAD);
    if first_load.is_file() {
        let load: FirstLoad = serde_json::from_slice(&std::fs::read(&first_load)?)
            .with_context(|| format!("{} is not a first-load report", first_load.display()))?;
        let (Some(begin), Some(end)) = (updated.find(FIRST_LOAD_BEGIN), updated.find(FIRST_LOAD_END)) else {
            anyhow::bail!("{} has no {FIRST_LOAD_BEGIN} … {FIRST_LOAD_END} section", into.display());
        };
        updated = format!(
            "{}{FIRST_LOAD_BEGIN}\n{}{}",
            &updated[..begin],
            first_load_markdown(&load),
            &updated[end..]
        );
    }
    std::fs::write(into, updated)?;
    println!("updated {} from {} reports", into.display(), reports.len());
    Ok(())
}

/// `first-load.json`: medians per network and content coding.
#[derive(Debug, Deserialize)]
struct FirstLoad {
    command: String,
    commit: String,
    browser: String,
    wifi: Wifi,
    results: Vec<FirstLoadRun>,
}

#[derive(Debug, Deserialize)]
struct Wifi {
    latency_ms: f64,
    down_mbit: f64,
    up_mbit: f64,
}

#[derive(Debug, Deserialize)]
struct FirstLoadRun {
    network: String,
    coding: String,
    runs: u32,
    usable_ms: f64,
    encoded_bytes: f64,
    decoded_bytes: f64,
    requests: u32,
}

fn first_load_markdown(load: &FirstLoad) -> String {
    let kib = |bytes: f64| format!("{:.1} KiB", bytes / 1024.0);
    let mut md = format!(
        "Measured with `{}` (commit {}, {}, server and browser on the same machine): a new browser \
         context per run, the median of {} runs. \"wifi\" is emulated: {} Mbit/s down, {} Mbit/s up, \
         {} ms round trip.\n\n",
        load.command,
        load.commit,
        load.browser,
        load.results.first().map_or(0, |r| r.runs),
        number(load.wifi.down_mbit),
        number(load.wifi.up_mbit),
        number(load.wifi.latency_ms),
    );
    md.push_str(
        "| Network | Accept-Encoding | Bodies as sent | Bodies decoded | Requests | Sign-in form usable after |\n\
         |---|---|---|---|---|---|\n",
    );
    for r in &load.results {
        let coding = match r.coding.as_str() {
            "br" => "Chromium's own (brotli sent)",
            other => other,
        };
        let _ = writeln!(
            md,
            "| {} | {coding} | {} | {} | {} | {} ms |",
            r.network,
            kib(r.encoded_bytes),
            kib(r.decoded_bytes),
            r.requests,
            number(r.usable_ms),
        );
    }
    md
}

fn relative(dir: &Path, base: &Path) -> PathBuf {
    match (dir.canonicalize(), base.canonicalize()) {
        (Ok(dir), Ok(base)) => dir.strip_prefix(&base).map(Path::to_path_buf).unwrap_or(dir),
        _ => dir.to_path_buf(),
    }
}

fn markdown(reports: &[Report], images: &Path) -> String {
    let mut md = String::new();
    let first = &reports[0];
    let _ = writeln!(
        md,
        "Measured on {} × {} ({} GiB RAM, Linux {}), load generator and server on the same machine.\n",
        first.machine.cpus, first.machine.cpu, first.machine.memory_gib, first.machine.kernel
    );
    md.push_str(
        "| Scenario | Database | Goal | Target | Measured | Met | Commit |\n|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        for g in &r.goals {
            let met = if g.met { "yes" } else { "**no**" };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {met} | {} |",
                r.scenario, r.database, g.what, g.target, g.measured, r.commit
            );
        }
    }
    for scenario in ORDER {
        let runs: Vec<&Report> = reports.iter().filter(|r| r.scenario == scenario).collect();
        if runs.is_empty() {
            continue;
        }
        let _ = writeln!(md, "\n### {scenario}\n");
        let _ = writeln!(md, "Parameters: `{}`\n", runs[0].params);
        md.push_str("| Latency | Database | Count | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |\n|---|---|---|---|---|---|---|---|\n");
        for r in &runs {
            for (name, s) in &r.latency {
                let _ = writeln!(
                    md,
                    "| {name} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                    r.database, s.count, s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms, s.max_ms
                );
            }
        }
        let _ = write!(md, "\n| Result |");
        for r in &runs {
            let _ = write!(md, " {} |", r.database);
        }
        let _ = write!(md, "\n|---|{}\n", "---|".repeat(runs.len()));
        let mut names: Vec<&String> = runs.iter().flat_map(|r| r.results.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let _ = write!(md, "| {name} |");
            for r in &runs {
                let _ = write!(md, " {} |", r.results.get(name).map_or("–".to_owned(), |v| number(*v)));
            }
            md.push('\n');
        }
        let rows: [(&str, Cell); 5] = [
            ("server RSS peak, MiB", |r| format!("{:.1}", r.server.rss_peak_mib)),
            ("server RSS at the end, MiB", |r| format!("{:.1}", r.server.rss_end_mib)),
            ("server CPU, mean % of one core", |r| format!("{:.0}", r.server.cpu_mean_percent)),
            ("load generator CPU, mean %", |r| format!("{:.0}", r.server.bench_cpu_mean_percent)),
            ("errors", |r| r.errors.count.to_string()),
        ];
        for (label, value) in rows {
            let _ = write!(md, "| {label} |");
            for r in &runs {
                let _ = write!(md, " {} |", value(r));
            }
            md.push('\n');
        }
        md.push('\n');
        for r in &runs {
            let _ = writeln!(md, "![{scenario} on {}]({}/{}.svg)", r.database, images.display(), r.name());
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_load_section_is_rendered_from_its_json_between_its_markers() {
        let dir = std::env::temp_dir().join(format!("kitsulan-bench-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let json = r#"{"scenario":"first_load","command":"npm run e2e -- first-load.spec.ts","commit":"abc1234",
            "unix_time":1,"browser":"Chromium 140","server":"http://127.0.0.1:1",
            "wifi":{"latency_ms":20,"down_mbit":20,"up_mbit":10},
            "results":[{"network":"loopback","coding":"br","runs":3,"usable_ms":412,"transfer_bytes":409600,
            "encoded_bytes":400000,"decoded_bytes":1500000,"requests":6,"files":[]}]}"#;
        std::fs::write(dir.as_path().join(FIRST_LOAD), json).unwrap();
        let mut report = Report::new("keys", Db::Sqlite, serde_json::json!({}));
        report.goal("claims", "> 1", "2".into(), true);
        std::fs::write(dir.as_path().join("keys-sqlite.json"), serde_json::to_vec(&report).unwrap()).unwrap();
        let md = dir.as_path().join("B.md");
        std::fs::write(
            &md,
            format!("a\n{BEGIN}\nold\n{END}\nb\n{FIRST_LOAD_BEGIN}\nold\n{FIRST_LOAD_END}\nc\n"),
        )
        .unwrap();
        update_markdown(dir.as_path(), &md).unwrap();
        let text = std::fs::read_to_string(&md).unwrap();
        assert!(!text.contains("old"), "{text}");
        assert!(
            text.contains(
                "| loopback | Chromium's own (brotli sent) | 390.6 KiB | 1464.8 KiB | 6 | 412 ms |"
            ),
            "{text}"
        );
        assert!(text.contains("`npm run e2e -- first-load.spec.ts` (commit abc1234, Chromium 140"), "{text}");
        assert!(text.ends_with(&format!("{FIRST_LOAD_END}\nc\n")), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
