// Refreshing a view while it is shown, without ever overlapping: the next refresh is scheduled
// only once the previous one has finished (a slow answer delays the next, it never piles up
// behind it), nothing runs while the tab is hidden, and all of it stops when `signal` (the
// view's navigation) is aborted.

export function refreshLoop(signal, refresh, everyMs) {
  let timer = null;
  const tick = async () => {
    timer = null;
    if (signal.aborted) return;
    if (!document.hidden) {
      try {
        await refresh();
      } catch {
        // a missed refresh is tried again at the next tick; `refresh` shows what it must
      }
    }
    if (!signal.aborted) timer = setTimeout(tick, everyMs);
  };
  signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
  timer = setTimeout(tick, everyMs);
}

// `fn` at most once at a time: a call while one runs gets that one's promise (a view's first
// read, still running when its refresh loop ticks, is awaited rather than asked again).
export function singleFlight(fn) {
  let running = null;
  return () => {
    running ??= Promise.resolve().then(fn).finally(() => { running = null; });
    return running;
  };
}

// Wait for `promise` at most `ms`; either way, carry on (it keeps running).
export function atMost(promise, ms) {
  let timer;
  return Promise.race([
    promise.catch(() => {}),
    new Promise((resolve) => { timer = setTimeout(resolve, ms); }),
  ]).finally(() => clearTimeout(timer));
}
