//! Counts a BLT file and prints the report: `cargo run -p convene-governance --example tally -- FILE.blt [method] [seats] [seed]`.
//! (The `convene tally` command of the instance does the same with proper flags.)

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!(
            "usage: tally FILE.blt [stv|meek|irv|schulze|approval|plurality] [seats] [seed] [--json]"
        );
        std::process::exit(2);
    };
    let run = || -> Result<String, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let election = convene_governance::blt::parse(&text).map_err(|e| e.to_string())?;
        let method = args
            .get(2)
            .map(String::as_str)
            .unwrap_or("stv")
            .parse()
            .map_err(|e: convene_governance::Error| e.to_string())?;
        let seats = match args.get(3) {
            Some(s) => s
                .parse()
                .map_err(|_| format!("seats {s:?} is not a number"))?,
            None => election.seats().unwrap_or(1),
        };
        let seed = match args.get(4) {
            Some(s) => s
                .parse()
                .map_err(|_| format!("seed {s:?} is not a number"))?,
            None => 0,
        };
        let outcome =
            convene_governance::count(&election, method, seats, seed).map_err(|e| e.to_string())?;
        if args.iter().any(|a| a == "--json") {
            serde_json::to_string_pretty(&outcome).map_err(|e| e.to_string())
        } else {
            Ok(outcome.to_text())
        }
    };
    match run() {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
