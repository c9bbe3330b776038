// One turn of the event loop (a macrotask), so what waits outside the training loop
// runs between steps: Node's signal handlers (Ctrl-C), a worker's incoming messages
// (the lab's Pause). A CPU step, and a GPU step whose readback is already resolved,
// settle through microtasks only, so an `await` alone never lets those run.
// setImmediate in Node; a MessageChannel in browsers and workers, where setTimeout(0)
// is clamped to 4 ms after a few nested calls (a tiny model's whole step).

type Immediate = (fn: () => void) => unknown;

export function yieldTurn(): Promise<void> {
  const immediate = (globalThis as { setImmediate?: Immediate }).setImmediate;
  if (typeof immediate === 'function') return new Promise((resolve) => void immediate(resolve));
  if (typeof MessageChannel === 'function') {
    return new Promise((resolve) => {
      const ch = new MessageChannel();
      ch.port1.onmessage = () => {
        ch.port1.close();
        resolve();
      };
      ch.port2.postMessage(null);
    });
  }
  return new Promise((resolve) => setTimeout(resolve, 0));
}
