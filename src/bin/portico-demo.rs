//! Starts the demo services of `conf/portico.yaml`: two `users` instances and
//! one `orders` instance on loopback. Addresses can be changed with
//! `--users ADDR[,ADDR..]` and `--orders ADDR[,ADDR..]`.

use std::net::SocketAddr;
use std::process::ExitCode;

fn parse(args: &[String], flag: &str, default: &str) -> Result<Vec<SocketAddr>, String> {
    let value = args
        .iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
        .unwrap_or(default);
    value
        .split(',')
        .map(|a| a.trim().parse().map_err(|e| format!("{flag} {a:?}: {e}")))
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let plan = parse(&args, "--users", "127.0.0.1:9001,127.0.0.1:9002")
        .and_then(|u| Ok((u, parse(&args, "--orders", "127.0.0.1:9003")?)));
    let (users, orders) = match plan {
        Ok(p) => p,
        Err(e) => {
            eprintln!("portico-demo: {e}");
            return ExitCode::from(2);
        }
    };
    let all = users
        .iter()
        .map(|a| (*a, "users"))
        .chain(orders.iter().map(|a| (*a, "orders")));
    for (addr, service) in all {
        match portico::demo::spawn(addr, service).await {
            Ok(bound) => println!("portico-demo: {service} on http://{bound}"),
            Err(e) => {
                eprintln!("portico-demo: cannot listen on {addr}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
