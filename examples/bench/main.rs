//! The benchmark harness (issue 6): the same workloads against p11kms, SoftHSM and
//! aws-lc-rs directly, in one run, interleaved, several rounds; medians and ratios on
//! stdout, a JSON result and an SVG chart. It asserts nothing about time.
//!
//!   cargo build --release --example bench
//!   target/release/examples/bench [--quick] [--out DIR] [--module PATH] [--softhsm PATH]
//!
//! (`scripts/bench.sh` does both.) PKCS#11 modules are loaded by path and called
//! through their function lists. With an AWS KMS emulator in the environment
//! (`AWS_ENDPOINT_URL`, as `scripts/localstack.sh env` prints) it also compares a
//! remote sign through the module with the same call made with aws-sdk-kms.

mod chart;
mod child;
mod p11;
mod work;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;
use work::{Op, Target};

const SIZES: [usize; 4] = [64, 1024, 16 * 1024, 1024 * 1024];
const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";

struct Args {
    quick: bool,
    /// Only the cells whose op id starts with this (e.g. aes_gcm), and no object or
    /// remote workloads.
    only: Option<String>,
    out: Option<PathBuf>,
    module: String,
    softhsm: Option<String>,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args {
        quick: false,
        only: None,
        out: None,
        module: concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/libp11kms.so").into(),
        softhsm: Path::new(SOFTHSM).exists().then(|| SOFTHSM.to_string()),
    };
    let mut it = argv.iter().skip(1);
    while let Some(x) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{x} needs a value"));
        match x.as_str() {
            "--quick" => a.quick = true,
            "--only" => a.only = Some(val()?),
            "--out" => a.out = Some(val()?.into()),
            "--module" => a.module = val()?,
            "--softhsm" => a.softhsm = Some(val()?).filter(|s| s != "none"),
            _ => return Err(format!("unknown argument {x}")),
        }
    }
    Ok(a)
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let arg = |i: usize| argv.get(i).cloned().unwrap_or_default();
    let num = |i: usize| arg(i).parse::<usize>().unwrap_or(0);
    let r = match arg(1).as_str() {
        "fill-child" => child::fill(&arg(2), num(3)),
        "init-child" => child::init(&arg(2), num(3)),
        #[cfg(feature = "aws")]
        "remote-child" => child::remote(&arg(2), num(3), Path::new(&arg(4))),
        "profile" => profile(&arg(2), &arg(3), num(4), num(5)),
        _ => parse_args(&argv).and_then(|a| bench(&a)),
    };
    if let Err(e) = r {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

/// `profile MODULE OP SIZE N`: only the module, N calls of one workload, for
/// `valgrind --tool=callgrind` or `perf record`. OP is a JSON op id (aes_gcm_encrypt…).
fn profile(module: &str, op: &str, size: usize, n: usize) -> Result<(), String> {
    let ops = [
        Op::GcmEnc,
        Op::GcmDec,
        Op::CbcPadEnc,
        Op::CbcPadDec,
        Op::HmacSign,
        Op::HmacVerify,
        Op::EcSign,
        Op::EcVerify,
        Op::RsaSign,
        Op::RsaVerify,
    ];
    let op = *ops
        .iter()
        .find(|o| o.id() == op)
        .ok_or(format!("unknown op {op}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let conf = dir.path().join("p11kms.toml");
    std::fs::write(
        &conf,
        format!(
            "log_level = \"error\"\n[[token]]\nlabel = \"bench\"\nstore = \"{}\"\n",
            dir.path().join("bench.sqlite").display()
        ),
    )
    .map_err(|e| e.to_string())?;
    std::env::set_var("P11KMS_CONF", &conf);
    let t = work::P11Target::setup(p11::P11::load(module, "p11kms")?, 1)?;
    let mut w = t.worker(0, op, size).ok_or("no such workload")?;
    for _ in 0..n {
        w();
    }
    Ok(())
}

/// One measured cell: an operation, a message size, a thread count; ops/s per round
/// for each target.
struct Cell {
    op: Op,
    size: usize,
    threads: usize,
    rates: BTreeMap<&'static str, Vec<f64>>,
    /// Ops per CPU-second of the working threads (see `work::Rate`), per round.
    cpu_rates: BTreeMap<&'static str, Vec<f64>>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

impl Cell {
    fn med(&self, t: &str) -> Option<f64> {
        self.rates.get(t).map(|v| median(v))
    }

    fn med_cpu(&self, t: &str) -> Option<f64> {
        self.cpu_rates.get(t).map(|v| median(v))
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn machine() -> BTreeMap<&'static str, String> {
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut m = BTreeMap::new();
    m.insert("cpu", cpu);
    m.insert("cores", cores.to_string());
    m.insert(
        "kernel",
        read("/proc/sys/kernel/osrelease").trim().to_string(),
    );
    m
}

fn loadavg() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn fmt_rate(ops: f64, size: usize) -> String {
    let mb = ops * size as f64 / 1e6;
    if size >= 1024 {
        format!("{:>9.0} MB/s", mb)
    } else {
        format!("{:>9.0} op/s", ops)
    }
}

fn bench(a: &Args) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let d = dir.path();
    let (rounds, budget) = if a.quick {
        (3, Duration::from_millis(15))
    } else {
        (5, Duration::from_millis(200))
    };
    let load_start = loadavg();
    let mach = machine();
    println!(
        "bench: {} ({} cores, kernel {}), load {}; {} rounds of {} ms per cell and module{}",
        mach["cpu"],
        mach["cores"],
        mach["kernel"],
        load_start,
        rounds,
        budget.as_millis(),
        if a.quick { " (quick mode)" } else { "" }
    );

    // p11kms: one local token in the temporary directory; quiet log.
    let conf = d.join("p11kms.toml");
    std::fs::write(
        &conf,
        format!(
            "log_level = \"error\"\n[[token]]\nlabel = \"bench\"\nstore = \"{}\"\n",
            d.join("bench.sqlite").display()
        ),
    )
    .map_err(|e| e.to_string())?;
    std::env::set_var("P11KMS_CONF", &conf);
    std::fs::create_dir_all(d.join("softhsm")).map_err(|e| e.to_string())?;
    std::fs::write(
        d.join("softhsm2.conf"),
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            d.join("softhsm").display()
        ),
    )
    .map_err(|e| e.to_string())?;
    std::env::set_var("SOFTHSM2_CONF", d.join("softhsm2.conf"));

    let mut targets: Vec<Box<dyn Target>> = vec![Box::new(work::P11Target::setup(
        p11::P11::load(&a.module, "p11kms")?,
        2,
    )?)];
    if let Some(sh) = &a.softhsm {
        targets.push(Box::new(work::P11Target::setup(
            p11::P11::load(sh, "SoftHSM")?,
            2,
        )?));
    }
    targets.push(Box::new(work::Raw::new(false)?));
    targets.push(Box::new(work::Raw::new(true)?));

    let mut cells = Vec::new();
    for op in [Op::GcmEnc, Op::GcmDec] {
        for threads in [1, 2] {
            for size in SIZES {
                cells.push((op, size, threads));
            }
        }
    }
    for op in [Op::CbcPadEnc, Op::CbcPadDec, Op::HmacSign, Op::HmacVerify] {
        for size in SIZES {
            cells.push((op, size, 1));
        }
    }
    for op in [Op::EcSign, Op::EcVerify, Op::RsaSign, Op::RsaVerify] {
        cells.push((op, 64, 1));
    }
    if let Some(only) = &a.only {
        cells.retain(|(op, _, _)| op.id().starts_with(only.as_str()));
    }
    let mut cells: Vec<Cell> = cells
        .into_iter()
        .map(|(op, size, threads)| Cell {
            op,
            size,
            threads,
            rates: BTreeMap::new(),
            cpu_rates: BTreeMap::new(),
        })
        .collect();
    // Interleaved: every round visits every cell, and within a cell every target, in
    // an order that rotates from round to round.
    for r in 0..rounds {
        for c in cells.iter_mut() {
            for k in 0..targets.len() {
                let t = &targets[(k + r) % targets.len()];
                let ws: Option<Vec<_>> =
                    (0..c.threads).map(|i| t.worker(i, c.op, c.size)).collect();
                let Some(ws) = ws else { continue };
                let v = work::rate(ws, budget);
                c.rates.entry(t.name()).or_default().push(v.wall);
                c.cpu_rates.entry(t.name()).or_default().push(v.cpu);
            }
        }
        eprintln!("bench: round {}/{rounds} done (load {})", r + 1, loadavg());
    }
    let names: Vec<&'static str> = targets.iter().map(|t| t.name()).collect();
    drop(targets);

    // ---- the table ----
    let mut table = String::new();
    let _ = write!(table, "| operation | size | threads |");
    for n in &names {
        let _ = write!(table, " {n} |");
    }
    let _ = writeln!(
        table,
        " p11kms / aws-lc-rs | p11kms / aws-lc-rs out of place | p11kms / SoftHSM |"
    );
    let _ = writeln!(
        table,
        "|---|---:|---:|{}---:|---:|---:|",
        "---:|".repeat(names.len())
    );
    for c in &cells {
        let _ = write!(
            table,
            "| {} | {} | {} |",
            c.op.name(),
            size_name(c.size),
            c.threads
        );
        for n in &names {
            let _ = write!(
                table,
                " {} |",
                c.med(n)
                    .map_or("—".into(), |v| fmt_rate(v, c.size).trim().to_string())
            );
        }
        let ratio = |other: &str| match (c.med("p11kms"), c.med(other)) {
            (Some(p), Some(o)) if o > 0.0 => format!("{:.2}", p / o),
            _ => "—".into(),
        };
        let _ = writeln!(
            table,
            " {} | {} | {} |",
            ratio("aws-lc-rs"),
            ratio("aws-lc-rs out of place"),
            ratio("SoftHSM")
        );
    }
    println!("\n{table}");

    // ---- objects: C_Initialize to a logged-in session, C_FindObjects ----
    let counts: &[usize] = if a.only.is_some() {
        &[]
    } else if a.quick {
        &[10, 1000]
    } else {
        &[10, 1000, 10000]
    };
    let runs = if a.quick { 1 } else { 5 };
    let mut objects = Vec::new();
    for &n in counts {
        let od = d.join(format!("objects-{n}"));
        std::fs::create_dir_all(&od).map_err(|e| e.to_string())?;
        let oconf = od.join("p11kms.toml");
        std::fs::write(
            &oconf,
            format!(
                "log_level = \"error\"\n[[token]]\nlabel = \"objects\"\nstore = \"{}\"\n",
                od.join("objects.sqlite").display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let fill = child::run(&oconf, &["fill-child", &a.module, &n.to_string()])?;
        let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for _ in 0..runs {
            for (k, v) in child::run(&oconf, &["init-child", &a.module, &n.to_string()])? {
                samples.entry(k).or_default().push(v);
            }
        }
        let mut m: BTreeMap<String, f64> = samples
            .iter()
            .map(|(k, v)| (k.clone(), median(v)))
            .collect();
        m.insert("fill_us".into(), fill["fill_us"]);
        objects.push((n, m));
    }
    let argon2 = median(
        &objects
            .iter()
            .map(|(_, m)| m["argon2_us"])
            .collect::<Vec<_>>(),
    );
    let mut otable = String::new();
    let _ = writeln!(
        otable,
        "| objects | C_Initialize | C_OpenSession | C_Login | Argon2id alone (the PIN's KDF) | \
         init + open + login − Argon2id | FindObjects by label | by id | first by label | \
         filling the token |"
    );
    let _ = writeln!(
        otable,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (n, m) in &objects {
        let total = m["init_us"] + m["open_us"] + m["login_us"] - m["argon2_us"];
        let _ = writeln!(
            otable,
            "| {n} | {:.2} ms | {:.3} ms | {:.1} ms | {:.1} ms | {:.2} ms | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} s |",
            m["init_us"] / 1000.0,
            m["open_us"] / 1000.0,
            m["login_us"] / 1000.0,
            m["argon2_us"] / 1000.0,
            total / 1000.0,
            m["find_label_us"],
            m["find_id_us"],
            m["find_label_first_us"],
            m["fill_us"] / 1e6
        );
    }
    println!("{otable}");

    // ---- remote sign through the emulator ----
    let remote = if a.only.is_some() {
        None
    } else {
        remote_sign(a, d)?
    };
    if let Some(r) = &remote {
        println!(
            "remote ECDSA P-256 sign (emulator, median of {}, module at log level warn): module {:.0} µs, aws-sdk-kms direct {:.0} µs, ratio {:.3}; KMS calls per sign {:.2} (counted in a second run's debug log)\n",
            r["samples"],
            r["module_us"],
            r["sdk_us"],
            r["ratio"],
            r["kms_calls_per_sign"]
        );
    } else {
        println!(
            "remote sign: skipped ({})\n",
            if a.only.is_some() {
                "--only"
            } else {
                "no AWS_ENDPOINT_URL: start scripts/localstack.sh and eval its env"
            }
        );
    }
    let load_end = loadavg();
    println!("load average at start {load_start}, at end {load_end}");

    // ---- goals (issue 6) ----
    let get = |op: Op, size: usize, threads: usize, t: &str| {
        cells
            .iter()
            .find(|c| c.op == op && c.size == size && c.threads == threads)
            .and_then(|c| c.med(t))
    };
    let mut goals = Vec::new();
    let p16 = get(Op::GcmEnc, 16384, 1, "p11kms");
    let r16 = get(Op::GcmEnc, 16384, 1, "aws-lc-rs");
    let s16 = get(Op::GcmEnc, 16384, 1, "SoftHSM");
    let p64 = get(Op::GcmEnc, 64, 1, "p11kms");
    let p64x2 = get(Op::GcmEnc, 64, 2, "p11kms");
    let s64 = get(Op::GcmEnc, 64, 1, "SoftHSM");
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
    goals.push((
        "AES-GCM 16 KiB p11kms / aws-lc-rs",
        ">= 0.85",
        ratio(p16, r16),
    ));
    goals.push(("AES-GCM 16 KiB p11kms / SoftHSM", ">= 10", ratio(p16, s16)));
    goals.push((
        "AES-GCM 64 B init+encrypt, 1 thread (op/s)",
        ">= 1000000",
        p64,
    ));
    goals.push(("AES-GCM 64 B p11kms / SoftHSM", ">= 10", ratio(p64, s64)));
    goals.push((
        "AES-GCM 64 B 2 threads / 1 thread",
        ">= 1.8",
        ratio(p64x2, p64),
    ));
    let r64 = get(Op::GcmEnc, 64, 1, "aws-lc-rs");
    let r64x2 = get(Op::GcmEnc, 64, 2, "aws-lc-rs");
    goals.push((
        "  the same for aws-lc-rs directly (what the machine allowed)",
        "(reference)",
        ratio(r64x2, r64),
    ));
    let cpu = |threads: usize, t: &str| {
        cells
            .iter()
            .find(|c| c.op == Op::GcmEnc && c.size == 64 && c.threads == threads)
            .and_then(|c| c.med_cpu(t))
    };
    goals.push((
        "  the same per CPU-second of the threads (contention only, load-independent)",
        ">= 1.8",
        ratio(cpu(2, "p11kms"), cpu(1, "p11kms")),
    ));
    if let Some(r) = &remote {
        goals.push((
            "remote sign module / SDK latency",
            "<= 1.05",
            r.get("ratio").copied(),
        ));
    }
    if let Some((_, m)) = objects.iter().find(|(n, _)| *n == 10000) {
        goals.push((
            "C_Initialize..C_Login with 10000 objects minus Argon2id (ms)",
            "<= 50",
            Some((m["init_us"] + m["open_us"] + m["login_us"] - m["argon2_us"]) / 1000.0),
        ));
        goals.push((
            "FindObjects by label among 10000 (ms)",
            "<= 1",
            Some(m["find_label_us"] / 1000.0),
        ));
    }
    println!("goals:");
    for (g, want, got) in &goals {
        println!(
            "  {g}: target {want}, measured {}",
            got.map_or("—".into(), |v| format!("{v:.3}"))
        );
    }

    // ---- JSON and chart ----
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
        let json = to_json(
            a,
            &mach,
            &load_start,
            &load_end,
            rounds,
            budget,
            &cells,
            &objects,
            argon2,
            &remote,
            &goals,
        );
        std::fs::write(out.join("bench.json"), json).map_err(|e| e.to_string())?;
        std::fs::write(out.join("table.md"), format!("{table}\n{otable}"))
            .map_err(|e| e.to_string())?;
        let panel = |op: Op, threads: usize| chart::Panel {
            title: format!(
                "{}, {} thread{}",
                op.name(),
                threads,
                if threads > 1 { "s" } else { "" }
            ),
            series: names
                .iter()
                .map(|n| chart::Series {
                    name: n.to_string(),
                    points: cells
                        .iter()
                        .filter(|c| c.op == op && c.threads == threads)
                        .filter_map(|c| Some((c.size as f64, c.med(n)? * c.size as f64 / 1e6)))
                        .collect(),
                })
                .collect(),
        };
        let panels = [
            panel(Op::GcmEnc, 1),
            panel(Op::GcmDec, 1),
            panel(Op::GcmEnc, 2),
            panel(Op::CbcPadEnc, 1),
            panel(Op::HmacSign, 1),
            panel(Op::CbcPadDec, 1),
        ];
        let sub = format!(
            "{} ({} cores), load {} → {}; init + single-part call per message; median of {rounds} rounds",
            mach["cpu"], mach["cores"], load_start, load_end
        );
        std::fs::write(
            out.join("bench.svg"),
            chart::svg("Throughput against message size", &sub, &panels, 3),
        )
        .map_err(|e| e.to_string())?;
        println!("wrote {}/bench.json, table.md, bench.svg", out.display());
    }
    Ok(())
}

fn size_name(n: usize) -> String {
    match n {
        n if n >= 1 << 20 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

#[cfg(feature = "aws")]
fn remote_sign(a: &Args, d: &Path) -> Result<Option<BTreeMap<String, f64>>, String> {
    let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") else {
        return Ok(None);
    };
    let rd = d.join("remote");
    std::fs::create_dir_all(&rd).map_err(|e| e.to_string())?;
    let run =
        rd.file_name().unwrap().to_string_lossy().to_string() + &std::process::id().to_string();
    let log = rd.join("module.log");
    // Two runs: the timed one at the default log level (as deployed: a debug log's
    // writes would be the module's cost, not the SDK's), and a short one at debug
    // whose log counts the KMS calls per sign. No KEK is used by signing; the alias
    // is only named.
    let conf = |name: &str, level: &str, log_file: Option<&Path>| -> Result<PathBuf, String> {
        let p = rd.join(name);
        let log_line = log_file.map_or(String::new(), |l| {
            format!("log_file = \"{}\"\n", l.display())
        });
        std::fs::write(
            &p,
            format!(
                "log_level = \"{level}\"\n{log_line}[[token]]\nlabel = \"aws\"\nbackend = \"aws\"\nregion = \"us-east-1\"\nendpoint = \"{endpoint}\"\nkek = \"alias/p11kms-bench-kek-{run}\"\nalias_prefix = \"alias/p11kms-bench/{run}-{name}/\"\nstore = \"{}\"\n",
                rd.join(format!("{name}.sqlite")).display()
            ),
        )
        .map_err(|e| e.to_string())?;
        Ok(p)
    };
    // Each sample is one ~3 ms call against the emulator, whose latency wanders by
    // ±10 % with the machine's load: many interleaved samples steady the medians.
    let n = if a.quick { 5 } else { 201 };
    let timed = conf("timed.toml", "warn", None)?;
    let mut r = child::run(&timed, &["remote-child", &a.module, &n.to_string(), "-"])?;
    let counted = conf("counted.toml", "debug", Some(&log))?;
    let c = child::run(
        &counted,
        &["remote-child", &a.module, "5", &log.display().to_string()],
    )?;
    if let Some(v) = c.get("kms_calls_per_sign") {
        r.insert("kms_calls_per_sign".into(), *v);
    }
    r.insert("samples".into(), n as f64);
    Ok(Some(r))
}

#[cfg(not(feature = "aws"))]
fn remote_sign(_: &Args, _: &Path) -> Result<Option<BTreeMap<String, f64>>, String> {
    Ok(None)
}

#[allow(clippy::too_many_arguments)]
fn to_json(
    a: &Args,
    mach: &BTreeMap<&'static str, String>,
    load_start: &str,
    load_end: &str,
    rounds: usize,
    budget: Duration,
    cells: &[Cell],
    objects: &[(usize, BTreeMap<String, f64>)],
    argon2: f64,
    remote: &Option<BTreeMap<String, f64>>,
    goals: &[(&str, &str, Option<f64>)],
) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let num = |v: f64| {
        if v.is_finite() {
            format!("{v:.3}")
        } else {
            "null".into()
        }
    };
    let mut s = String::from("{\n");
    let _ = writeln!(
        s,
        "  \"machine\": {{\"cpu\": {}, \"cores\": {}, \"kernel\": {}}},",
        q(&mach["cpu"]),
        mach["cores"],
        q(&mach["kernel"])
    );
    let _ = writeln!(
        s,
        "  \"load_average\": {{\"start\": {}, \"end\": {}}},",
        q(load_start),
        q(load_end)
    );
    let _ = writeln!(
        s,
        "  \"quick\": {}, \"rounds\": {rounds}, \"budget_ms\": {},",
        a.quick,
        budget.as_millis()
    );
    s.push_str("  \"cells\": [\n");
    for (i, c) in cells.iter().enumerate() {
        let _ = write!(
            s,
            "    {{\"op\": {}, \"size\": {}, \"threads\": {}, \"median_ops_per_s\": {{",
            q(c.op.id()),
            c.size,
            c.threads
        );
        let med: Vec<String> = c
            .rates
            .keys()
            .map(|k| format!("{}: {}", q(k), num(c.med(k).unwrap())))
            .collect();
        s.push_str(&med.join(", "));
        s.push_str("}, \"median_ops_per_cpu_s\": {");
        let medc: Vec<String> = c
            .cpu_rates
            .keys()
            .map(|k| format!("{}: {}", q(k), num(c.med_cpu(k).unwrap())))
            .collect();
        s.push_str(&medc.join(", "));
        s.push_str("}, \"rounds_ops_per_s\": {");
        let all: Vec<String> = c
            .rates
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}: [{}]",
                    q(k),
                    v.iter().map(|x| num(*x)).collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        s.push_str(&all.join(", "));
        let _ = writeln!(s, "}}}}{}", if i + 1 < cells.len() { "," } else { "" });
    }
    s.push_str("  ],\n  \"objects\": [\n");
    for (i, (n, m)) in objects.iter().enumerate() {
        let kv: Vec<String> = m
            .iter()
            .map(|(k, v)| format!("{}: {}", q(k), num(*v)))
            .collect();
        let _ = writeln!(
            s,
            "    {{\"count\": {n}, {}}}{}",
            kv.join(", "),
            if i + 1 < objects.len() { "," } else { "" }
        );
    }
    let _ = writeln!(s, "  ],\n  \"argon2id_login_kdf_us\": {},", num(argon2));
    match remote {
        Some(r) => {
            let kv: Vec<String> = r
                .iter()
                .map(|(k, v)| format!("{}: {}", q(k), num(*v)))
                .collect();
            let _ = writeln!(s, "  \"remote_sign\": {{{}}},", kv.join(", "));
        }
        None => s.push_str("  \"remote_sign\": null,\n"),
    }
    s.push_str("  \"goals\": [\n");
    for (i, (g, want, got)) in goals.iter().enumerate() {
        let _ = writeln!(
            s,
            "    {{\"goal\": {}, \"target\": {}, \"measured\": {}}}{}",
            q(g),
            q(want),
            got.map_or("null".into(), num),
            if i + 1 < goals.len() { "," } else { "" }
        );
    }
    s.push_str("  ]\n}\n");
    s
}
