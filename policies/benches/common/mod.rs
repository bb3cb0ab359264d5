//! Shared by the policies benches: on-CPU cost per call, read from the thread's schedstat so it
//! does not count the time other processes held the CPU on a shared machine (criterion's wall
//! time does). Owns no bench of its own.

/// On-CPU nanoseconds of this thread (`/proc/thread-self/schedstat`).
pub fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Prints the on-CPU cost of `f` per call over `n` calls, naming a call `unit`.
pub fn cpu_per_call(unit: &str, name: &str, n: u64, mut f: impl FnMut()) {
    let before = thread_cpu_ns();
    for _ in 0..n {
        f();
    }
    let spent = thread_cpu_ns().saturating_sub(before);
    println!("{name}: {:.0} on-CPU ns per {unit} ({n} {unit}s)", spent as f64 / n as f64);
}
