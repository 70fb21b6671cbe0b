//! `local-gateway-load`: a bounded load run against the local gateway on loopback.
//! Fixed concurrency (keep-alive connections), a fixed duration (at most 60 s) and a
//! request cap; prints requests per second and latency percentiles.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use local_gateway::client::Conn;
use local_gateway::LocalCredentials;
use service_auth::UnixTime;

/// Bounded HTTP load on 127.0.0.1 (loopback only).
#[derive(Parser, Debug)]
#[command(name = "local-gateway-load", version, about)]
struct Args {
    /// The URL to GET, on 127.0.0.1 (`http://127.0.0.1:3000/identitykey/v1/internal/users/ID`).
    #[arg(long)]
    url: String,
    /// A request header `Name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Sign with SigV4 as this development access key (signed once, reused: a
    /// signature is valid for 15 minutes).
    #[arg(long, value_name = "AKID")]
    sigv4: Option<String>,
    /// Seconds to run (at most 60).
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Connections, each sending one request at a time.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Stop after this many requests in total.
    #[arg(long, default_value_t = 5_000_000)]
    max_requests: u64,
    /// The status every answer must have.
    #[arg(long, default_value_t = 200)]
    expect: u16,
    /// A label for the result line.
    #[arg(long, default_value = "run")]
    label: String,
}

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("local-gateway-load: {msg}");
    std::process::exit(2)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if args.duration == 0 || args.duration > 60 {
        fail("--duration must be 1..=60 seconds");
    }
    if args.concurrency == 0 || args.concurrency > 256 {
        fail("--concurrency must be 1..=256");
    }
    let rest = args
        .url
        .strip_prefix("http://")
        .unwrap_or_else(|| fail("the URL must be http://127.0.0.1:PORT/..."));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr: SocketAddr = authority
        .parse()
        .unwrap_or_else(|_| fail("the URL's host must be an IP address and port"));
    if !addr.ip().is_loopback() {
        fail("loopback addresses only");
    }
    let target = if path.is_empty() { "/" } else { path }.to_owned();
    let mut headers: Vec<(String, String)> = args
        .headers
        .iter()
        .map(|h| {
            let (k, v) = h
                .split_once(':')
                .unwrap_or_else(|| fail(format!("header {h:?} is not Name: value")));
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    if let Some(akid) = &args.sigv4 {
        let creds = LocalCredentials::dev()
            .credentials(akid)
            .unwrap_or_else(|| fail(format!("{akid} is not a development access key")));
        headers.push(("Host".into(), authority.to_owned()));
        local_gateway::sigv4::sign_headers(
            "GET",
            &target,
            &mut headers,
            b"",
            &creds,
            "us-east-1",
            UnixTime::now(),
        )
        .unwrap_or_else(|e| fail(e));
    }

    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let budget = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(args.max_requests));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let headers = headers.clone();
        let target = target.clone();
        let budget = budget.clone();
        let expect = args.expect;
        tasks.push(tokio::spawn(async move {
            let mut lat: Vec<u32> = Vec::with_capacity(100_000);
            let mut wrong = 0u64;
            let mut errors = 0u64;
            let hs: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let mut conn = None;
            while Instant::now() < deadline {
                if budget
                    .fetch_update(
                        std::sync::atomic::Ordering::SeqCst,
                        std::sync::atomic::Ordering::SeqCst,
                        |b| b.checked_sub(1),
                    )
                    .is_err()
                {
                    break;
                }
                if conn.is_none() {
                    match Conn::connect(addr).await {
                        Ok(c) => conn = Some(c),
                        Err(_) => {
                            errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let t = Instant::now();
                let r = conn.as_mut().unwrap().send("GET", &target, &hs, b"").await;
                let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
                match r {
                    Ok(res) => {
                        lat.push(us);
                        if res.status != expect {
                            wrong += 1;
                        }
                    }
                    Err(_) => {
                        errors += 1;
                        conn = None;
                    }
                }
            }
            (lat, wrong, errors)
        }));
    }
    let mut all = Vec::new();
    let (mut wrong, mut errors) = (0, 0);
    for t in tasks {
        let (l, w, e) = t.await.unwrap();
        all.extend(l);
        wrong += w;
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_unstable();
    println!(
        "{}: {} requests in {:.1} s, {:.0} req/s, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, concurrency {}, wrong status {}, errors {}",
        args.label,
        all.len(),
        secs,
        all.len() as f64 / secs,
        percentile(&all, 0.50),
        percentile(&all, 0.90),
        percentile(&all, 0.99),
        percentile(&all, 1.0),
        args.concurrency,
        wrong,
        errors
    );
    if wrong > 0 || errors > 0 || all.is_empty() {
        std::process::exit(1);
    }
}
