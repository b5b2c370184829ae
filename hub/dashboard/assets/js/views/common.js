// What several views share: re-fetching when a live event arrives.

/** Least time between two live-triggered redraws of a view. */
const LIVE_REDRAW_INTERVAL_MS = 1500;

/**
 * Redraws with `draw` after live events, at most once per LIVE_REDRAW_INTERVAL_MS, so a burst
 * of changes costs one round of requests. Returns the view's cleanup.
 */
export function refreshOnLive(ctx, draw) {
  let timer = null;
  let stopped = false;
  ctx.onLive(() => {
    if (timer || stopped) return;
    timer = setTimeout(async () => {
      timer = null;
      if (!stopped) {
        try {
          await draw();
        } catch {
          // The next event or a reload will try again; the old view stays readable meanwhile.
        }
      }
    }, LIVE_REDRAW_INTERVAL_MS);
  });
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}
