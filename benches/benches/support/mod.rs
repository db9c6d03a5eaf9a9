//! Shared by the benchmarks: reading criterion's results of this run.

/// The median (ns) of a benchmark, from criterion's estimates of this run.
pub(crate) fn median_ns(group: &str, id: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(std::path::PathBuf::from).or_else(|| {
        let exe = std::env::current_exe().ok()?;
        Some(exe.parent()?.parent()?.parent()?.to_path_buf())
    })?;
    let path = target.join("criterion").join(group).join(id).join("new").join("estimates.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

/// Runs `ours` and `floor` in alternating batches of `batch` calls for `rounds` rounds, so both see
/// the same machine state, and returns (median ns per call of ours, of the floor, median of the
/// per-round ratios). On a noisy shared machine this ratio is steadier than two separate runs.
pub(crate) fn paired_ratio(
    rounds: usize,
    batch: usize,
    mut ours: impl FnMut(),
    mut floor: impl FnMut(),
) -> (f64, f64, f64) {
    let (mut a, mut b, mut r) =
        (Vec::with_capacity(rounds), Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    for round in 0..rounds {
        let time = |f: &mut dyn FnMut()| {
            let t = std::time::Instant::now();
            for _ in 0..batch {
                f();
            }
            t.elapsed().as_nanos() as f64 / batch as f64
        };
        // Alternate which goes first, so neither always inherits the other's cache state.
        let (x, y) = if round % 2 == 0 {
            let x = time(&mut ours);
            (x, time(&mut floor))
        } else {
            let y = time(&mut floor);
            (time(&mut ours), y)
        };
        a.push(x);
        b.push(y);
        r.push(x / y);
    }
    use tokenward_test_support::stats::median;
    (median(&mut a), median(&mut b), median(&mut r))
}
