//! The render budget: what one render may spend in loop iterations, bytes
//! built and wall-clock time.
//!
//! liquid has no budget of its own, so every place where a render can spend
//! unboundedly is one of ours (see `blocks` and `filters`) and charges here:
//! each `for` iteration, each value a filter, `assign` or `capture`
//! produces, and each block that buffers output. Iterations and bytes are
//! counted, so a template that is over budget fails the same way every
//! time; the clock is only the backstop for work that is not counted
//! (comparisons inside `if`, for example), checked at the same points.
//!
//! The budget lives in a thread-local for the duration of one render
//! because liquid creates the runtime (and its registers) internally and
//! gives nothing back when the render fails.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use liquid_core::model::{Value, ValueView};

/// Most `for` iterations one render may run, summed over all loops (nested
/// loops multiply). A message listing a few hundred items is far below it.
pub const MAX_LOOP_ITERATIONS: u64 = 10_000;

/// Largest value (string, or array/object by the size of its contents) a
/// filter, `assign` or `capture` may build. It sits above the largest HTTP
/// response a node can store (10 MiB), so a stored response can still be
/// split or sliced.
pub const MAX_VALUE_BYTES: usize = 16 * 1024 * 1024;

/// Total bytes one render may build across all filters, assigns and
/// captures: a bound on memory traffic when a loop rebuilds a big value.
pub const MAX_RENDER_WORK_BYTES: u64 = 64 * 1024 * 1024;

/// Longest one render may take. A backstop for work that is not counted;
/// anything within the counted limits finishes in milliseconds.
pub const MAX_RENDER_TIME: Duration = Duration::from_secs(1);

/// Which part of the budget a render ran out of.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Exceeded {
    #[error("the template ran more than {limit} loop iterations")]
    LoopIterations { limit: u64 },
    #[error("the template built a value of {size} bytes; the limit is {limit}")]
    ValueTooLarge { size: usize, limit: usize },
    #[error("the template built more than {limit} bytes in total")]
    Work { limit: u64 },
    #[error("the template took longer than {} ms to render", limit.as_millis())]
    Time { limit: Duration },
}

struct Budget {
    iterations: u64,
    work: u64,
    deadline: Instant,
    exceeded: Option<Exceeded>,
}

thread_local! {
    static CURRENT: RefCell<Option<Budget>> = const { RefCell::new(None) };
}

/// Runs `render` with a fresh budget on this thread and reports whether it
/// ran out. Restores whatever budget was active before, so it nests.
pub(crate) fn metered<T>(time: Duration, render: impl FnOnce() -> T) -> (T, Option<Exceeded>) {
    let fresh = Budget {
        iterations: 0,
        work: 0,
        deadline: Instant::now() + time,
        exceeded: None,
    };
    // Put back on the way out, even if `render` unwinds (the caller catches panics).
    struct Restore(Option<Budget>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = outer);
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(Some(fresh))));
    let out = render();
    let exceeded = CURRENT.with(|c| c.borrow_mut().as_mut().and_then(|b| b.exceeded.take()));
    (out, exceeded)
}

/// Applies `charge` to the active budget. Without one (liquid used outside
/// `Template::render`, which this crate never does) nothing is limited.
fn charge(charge: impl FnOnce(&mut Budget) -> Option<Exceeded>) -> liquid_core::Result<()> {
    CURRENT.with(|c| {
        let mut slot = c.borrow_mut();
        let Some(budget) = slot.as_mut() else {
            return Ok(());
        };
        if budget.exceeded.is_none() {
            budget.exceeded = charge(budget).or_else(|| {
                (Instant::now() > budget.deadline).then_some(Exceeded::Time {
                    limit: MAX_RENDER_TIME,
                })
            });
        }
        match &budget.exceeded {
            // liquid wraps this in its own context; `Template::render`
            // reports the recorded reason instead.
            Some(e) => Err(liquid_core::Error::with_msg(e.to_string())),
            None => Ok(()),
        }
    })
}

/// One loop iteration is about to run.
pub(crate) fn iteration() -> liquid_core::Result<()> {
    charge(|b| {
        b.iterations += 1;
        (b.iterations > MAX_LOOP_ITERATIONS).then_some(Exceeded::LoopIterations {
            limit: MAX_LOOP_ITERATIONS,
        })
    })
}

/// A value of `size` bytes is about to be (or was just) built. Callers that
/// can predict the size check before building, so the allocation never
/// happens.
pub(crate) fn bytes(size: usize) -> liquid_core::Result<()> {
    charge(|b| {
        if size > MAX_VALUE_BYTES {
            return Some(Exceeded::ValueTooLarge {
                size,
                limit: MAX_VALUE_BYTES,
            });
        }
        b.work = b.work.saturating_add(size as u64);
        (b.work > MAX_RENDER_WORK_BYTES).then_some(Exceeded::Work {
            limit: MAX_RENDER_WORK_BYTES,
        })
    })
}

/// The approximate memory a value holds: text bytes, plus a word per array
/// item. Stops counting once past [`MAX_VALUE_BYTES`], which is all the
/// caller needs to know, so sizing a huge value costs no more than the cap.
pub(crate) fn size_of(value: &dyn ValueView) -> usize {
    let mut total = 0usize;
    add_size(value, &mut total);
    total
}

fn add_size(value: &dyn ValueView, total: &mut usize) {
    if *total > MAX_VALUE_BYTES {
        return;
    }
    if let Some(array) = value.as_array() {
        for item in array.values() {
            *total = total.saturating_add(8);
            add_size(item, total);
            if *total > MAX_VALUE_BYTES {
                return;
            }
        }
    } else if let Some(object) = value.as_object() {
        for (key, item) in object.iter() {
            *total = total.saturating_add(key.len() + 8);
            add_size(item, total);
            if *total > MAX_VALUE_BYTES {
                return;
            }
        }
    } else if let Some(scalar) = value.as_scalar() {
        *total = total.saturating_add(scalar.to_kstr().len());
    } else {
        *total = total.saturating_add(1);
    }
}

/// `size_of` for an owned value.
pub(crate) fn size_of_value(value: &Value) -> usize {
    size_of(value.as_view())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterations_run_out() {
        let ((), e) = metered(Duration::from_secs(60), || {
            for _ in 0..MAX_LOOP_ITERATIONS {
                iteration().unwrap();
            }
            assert!(iteration().is_err());
            // Once exceeded, everything fails.
            assert!(bytes(1).is_err());
        });
        assert_eq!(
            e,
            Some(Exceeded::LoopIterations {
                limit: MAX_LOOP_ITERATIONS
            })
        );
    }

    #[test]
    fn work_adds_up_and_values_are_capped() {
        let ((), e) = metered(Duration::from_secs(60), || {
            assert!(bytes(MAX_VALUE_BYTES).is_ok());
            assert!(bytes(MAX_VALUE_BYTES + 1).is_err());
        });
        assert!(matches!(e, Some(Exceeded::ValueTooLarge { .. })), "{e:?}");
        let ((), e) = metered(Duration::from_secs(60), || {
            for _ in 0..4 {
                bytes(MAX_VALUE_BYTES).unwrap();
            }
            assert!(bytes(1).is_err());
        });
        assert_eq!(
            e,
            Some(Exceeded::Work {
                limit: MAX_RENDER_WORK_BYTES
            })
        );
    }

    #[test]
    fn the_clock_is_checked_at_every_charge() {
        let ((), e) = metered(Duration::ZERO, || {
            std::thread::sleep(Duration::from_millis(2));
            assert!(iteration().is_err());
        });
        assert!(matches!(e, Some(Exceeded::Time { .. })), "{e:?}");
    }

    #[test]
    fn budgets_nest_and_reset() {
        let ((), outer) = metered(Duration::from_secs(60), || {
            let ((), inner) = metered(Duration::from_secs(60), || {
                assert!(bytes(MAX_VALUE_BYTES + 1).is_err());
            });
            assert!(inner.is_some());
            // The outer budget is untouched by the inner one.
            assert!(bytes(10).is_ok());
        });
        assert_eq!(outer, None);
        // No budget active: unlimited.
        assert!(bytes(MAX_VALUE_BYTES + 1).is_ok());
    }
}
