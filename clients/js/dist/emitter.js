/**
 * A small typed event emitter (no dependency, same code in browsers and Node).
 *
 * @module
 */
/** Listeners by event name, called synchronously in the order they were added. */
export class Emitter {
    #listeners = new Map();
    /** Adds a listener; returns a function that removes it. */
    on(event, listener) {
        let set = this.#listeners.get(event);
        if (!set)
            this.#listeners.set(event, (set = new Set()));
        set.add(listener);
        return () => this.off(event, listener);
    }
    /** Adds a listener called at most once; returns a function that removes it. */
    once(event, listener) {
        const off = this.on(event, (...args) => {
            off();
            listener(...args);
        });
        return off;
    }
    /** Removes a listener. */
    off(event, listener) {
        this.#listeners.get(event)?.delete(listener);
    }
    /** Calls every listener of `event`. A listener that throws does not stop the others (the error is reported asynchronously). */
    emit(event, ...args) {
        const set = this.#listeners.get(event);
        if (!set)
            return;
        for (const listener of [...set]) {
            try {
                listener(...args);
            }
            catch (error) {
                queueMicrotask(() => {
                    throw error;
                });
            }
        }
    }
}
