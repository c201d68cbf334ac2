/**
 * A small typed event emitter (no dependency, same code in browsers and Node).
 *
 * @module
 */
/** Maps each event name to the arguments of its listeners. */
export type EventMap<E> = {
    [K in keyof E]: unknown[];
};
/** A listener of event `K`. */
export type Listener<E extends EventMap<E>, K extends keyof E> = (...args: E[K]) => void;
/** Listeners by event name, called synchronously in the order they were added. */
export declare class Emitter<E extends EventMap<E>> {
    #private;
    /** Adds a listener; returns a function that removes it. */
    on<K extends keyof E>(event: K, listener: Listener<E, K>): () => void;
    /** Adds a listener called at most once; returns a function that removes it. */
    once<K extends keyof E>(event: K, listener: Listener<E, K>): () => void;
    /** Removes a listener. */
    off<K extends keyof E>(event: K, listener: Listener<E, K>): void;
    /** Calls every listener of `event`. A listener that throws does not stop the others (the error is reported asynchronously). */
    protected emit<K extends keyof E>(event: K, ...args: E[K]): void;
}
