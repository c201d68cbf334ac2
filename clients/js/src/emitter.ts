/**
 * A small typed event emitter (no dependency, same code in browsers and Node).
 *
 * @module
 */

/** Maps each event name to the arguments of its listeners. */
export type EventMap<E> = { [K in keyof E]: unknown[] };

/** A listener of event `K`. */
export type Listener<E extends EventMap<E>, K extends keyof E> = (...args: E[K]) => void;

// Listeners are stored untyped; `on` and `emit` keep the types per event.
type AnyListener = (...args: any[]) => void;

/** Listeners by event name, called synchronously in the order they were added. */
export class Emitter<E extends EventMap<E>> {
  #listeners = new Map<keyof E, Set<AnyListener>>();

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof E>(event: K, listener: Listener<E, K>): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => this.off(event, listener);
  }

  /** Adds a listener called at most once; returns a function that removes it. */
  once<K extends keyof E>(event: K, listener: Listener<E, K>): () => void {
    const off = this.on(event, (...args: E[K]) => {
      off();
      listener(...args);
    });
    return off;
  }

  /** Removes a listener. */
  off<K extends keyof E>(event: K, listener: Listener<E, K>): void {
    this.#listeners.get(event)?.delete(listener);
  }

  /** Calls every listener of `event`. A listener that throws does not stop the others (the error is reported asynchronously). */
  protected emit<K extends keyof E>(event: K, ...args: E[K]): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(...args);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
