//! Client-side rate limit on every Kubernetes API request the controller
//! makes, as client-go's `--kube-api-qps` / `--kube-api-burst`: a token
//! bucket of `burst` tokens refilled at `qps` per second, applied as a tower
//! layer under the kube [`Client`](kube::Client). A request that finds the
//! bucket empty waits for its token instead of failing, so a storm of
//! reconciles slows down rather than hammering the API server.
//!
//! A watch costs one token when it starts, like in client-go; the events it
//! streams afterwards are free.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tower::{Layer, Service};

/// A token bucket kept as the time its next token is due (the "generic cell
/// rate algorithm" form): integer time arithmetic, no float drift, and the
/// clock is an argument so tests step it instead of sleeping.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Time between two tokens (1/qps).
    interval: Duration,
    /// How far ahead of `now` the due time may run: `burst - 1` intervals.
    tolerance: Duration,
    /// When the bucket would next have handed out a token at the steady rate.
    due: Instant,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilling at `qps` per second;
    /// `None` when `qps` is 0 or not finite (no limit). A burst of 0 is
    /// taken as 1: a limit that never admits anything is not a limit.
    pub fn new(qps: f32, burst: u32, now: Instant) -> Option<TokenBucket> {
        if !(qps.is_finite() && qps > 0.0) {
            return None;
        }
        let nanos = (1e9 / f64::from(qps)).round().max(1.0);
        let interval = Duration::from_nanos(nanos.min(u64::MAX as f64) as u64);
        Some(TokenBucket {
            interval,
            tolerance: interval.saturating_mul(burst.max(1) - 1),
            due: now,
        })
    }

    /// Takes a token at `now`, or says how long until one is available.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let due = self.due.max(now);
        let earliest = now + self.tolerance;
        if due > earliest {
            return Err(due - earliest);
        }
        self.due = due + self.interval;
        Ok(())
    }
}

/// Tokio's clock, so a paused test runtime drives the bucket too.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Wraps a service so every request first takes a token.
#[derive(Debug, Clone, Copy)]
pub struct RateLimitLayer {
    qps: f32,
    burst: u32,
}

impl RateLimitLayer {
    /// `qps` of 0 lets everything through.
    pub fn new(qps: f32, burst: u32) -> Self {
        RateLimitLayer { qps, burst }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            bucket: TokenBucket::new(self.qps, self.burst, now()),
            wait: None,
            admitted: false,
        }
    }
}

/// The service [`RateLimitLayer`] makes. It waits in `poll_ready`, which the
/// kube client's buffer drives for one request at a time, so requests are
/// admitted in the order they were sent.
pub struct RateLimit<S> {
    inner: S,
    bucket: Option<TokenBucket>,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A token was taken for the next `call`.
    admitted: bool,
}

impl<S, R> Service<R> for RateLimit<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        if let Some(bucket) = self.bucket.as_mut() {
            while !self.admitted {
                if let Some(wait) = self.wait.as_mut() {
                    if wait.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.wait = None;
                }
                match bucket.take(now()) {
                    Ok(()) => self.admitted = true,
                    Err(delay) => self.wait = Some(Box::pin(tokio::time::sleep(delay))),
                }
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> S::Future {
        self.admitted = false;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Each case: qps, burst, and the request times (ms after start) with
    /// the expected outcome (`Ok` or the wait in ms). A refused request takes
    /// no token.
    #[test]
    fn token_bucket_admits_a_burst_then_the_steady_rate() {
        type Case = (&'static str, f32, u32, &'static [(u64, Result<(), u64>)]);
        let cases: &[Case] = &[
            (
                "a full bucket admits burst requests at once, then waits one interval",
                10.0,
                3,
                &[(0, Ok(())), (0, Ok(())), (0, Ok(())), (0, Err(100))],
            ),
            (
                "tokens come back at qps",
                10.0,
                3,
                &[
                    (0, Ok(())),
                    (0, Ok(())),
                    (0, Ok(())),
                    (40, Err(60)),
                    (100, Ok(())),
                    (100, Err(100)),
                    (200, Ok(())),
                ],
            ),
            (
                "an idle bucket refills up to burst and no further",
                10.0,
                2,
                &[
                    (0, Ok(())),
                    (0, Ok(())),
                    (5_000, Ok(())),
                    (5_000, Ok(())),
                    (5_000, Err(100)),
                ],
            ),
            (
                "burst 1 is a plain rate",
                4.0,
                1,
                &[(0, Ok(())), (100, Err(150)), (250, Ok(())), (499, Err(1))],
            ),
            (
                "burst 0 counts as 1",
                2.0,
                0,
                &[(0, Ok(())), (0, Err(500)), (500, Ok(()))],
            ),
            (
                "fractional qps",
                0.5,
                1,
                &[(0, Ok(())), (1_000, Err(1_000)), (2_000, Ok(()))],
            ),
        ];
        for (rule, qps, burst, steps) in cases {
            let t0 = Instant::now();
            let mut bucket = TokenBucket::new(*qps, *burst, t0).expect("a limit");
            for (i, (at, expected)) in steps.iter().enumerate() {
                let got = bucket.take(t0 + ms(*at)).map_err(|d| d.as_millis() as u64);
                assert_eq!(got, *expected, "{rule}: step {i} at {at} ms");
            }
        }
    }

    #[test]
    fn zero_or_invalid_qps_means_no_limit() {
        let now = Instant::now();
        for qps in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert!(TokenBucket::new(qps, 10, now).is_none(), "qps {qps}");
        }
    }

    #[tokio::test]
    async fn the_layer_waits_for_tokens_instead_of_failing() {
        use tower::ServiceExt;
        let svc = tower::service_fn(|n: u32| async move { Ok::<_, std::convert::Infallible>(n) });
        let mut svc = RateLimitLayer::new(100.0, 2).layer(svc);
        let start = Instant::now();
        for n in 0..4 {
            let got = svc.ready().await.unwrap().call(n).await.unwrap();
            assert_eq!(got, n, "every request goes through");
        }
        // Two from the burst, then one per 10 ms: never sooner than 20 ms.
        assert!(start.elapsed() >= ms(20), "{:?}", start.elapsed());
    }
}
