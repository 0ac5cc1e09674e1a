//! One-core, CPU-time measurement for in-process figures: on a shared
//! machine wall time includes waiting for a core, a thread's CPU time does
//! not.

use std::time::Duration;

/// Pins the calling thread to CPU 0, so in-process figures are one-core
/// figures like a CLI run under `taskset -c 0`. False when refused.
pub fn pin_to_cpu0() -> bool {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// CPU time the calling thread has used so far.
pub fn thread_cpu() -> Duration {
    // SAFETY: timespec is plain data for clock_gettime to fill in.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid clock id and a valid out-pointer.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
