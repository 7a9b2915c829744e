//! Running independent jobs a few at a time, reporting results in input order.

use std::collections::BTreeMap;
use std::sync::{mpsc, Mutex};

/// Runs `work` on every item with up to `jobs` threads; `done(index, result)` is
/// called on the calling thread in input order, as soon as each result is ready.
pub fn run<T: Send, R: Send>(
    jobs: usize,
    items: Vec<T>,
    work: impl Fn(T) -> R + Sync,
    mut done: impl FnMut(usize, R),
) {
    let queue = Mutex::new(items.into_iter().enumerate());
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            let (tx, queue, work) = (tx.clone(), &queue, &work);
            s.spawn(move || loop {
                let next = queue.lock().unwrap().next();
                let Some((i, item)) = next else { break };
                if tx.send((i, work(item))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut next = 0;
        for (i, r) in rx {
            pending.insert(i, r);
            while let Some(r) = pending.remove(&next) {
                done(next, r);
                next += 1;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn results_in_order() {
        let items: Vec<u64> = vec![30, 0, 20, 5, 0, 10];
        let mut seen = Vec::new();
        super::run(
            2,
            items.clone(),
            |ms| {
                std::thread::sleep(Duration::from_millis(ms));
                ms * 2
            },
            |i, r| seen.push((i, r)),
        );
        let want: Vec<_> = items.iter().enumerate().map(|(i, v)| (i, v * 2)).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn empty_and_zero_jobs() {
        let mut n = 0;
        super::run(0, Vec::<u32>::new(), |x| x, |_, _| n += 1);
        assert_eq!(n, 0);
        super::run(0, vec![1, 2], |x| x, |_, _| n += 1);
        assert_eq!(n, 2);
    }
}
