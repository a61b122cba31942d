/**
 * A minimal typed event emitter (EventTarget needs CustomEvent for payloads
 * and costs more bytes in the browser bundle).
 */
export class Emitter<E> {
  private listeners: { [K in keyof E]?: ((event: E[K]) => void)[] } = {};

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof E>(type: K, listener: (event: E[K]) => void): () => void {
    (this.listeners[type] ??= []).push(listener);
    return () => {
      this.listeners[type] = this.listeners[type]?.filter((l) => l !== listener);
    };
  }

  /** Calls the listeners of `type`; a listener that throws does not stop the others. */
  protected emit<K extends keyof E>(type: K, event: E[K]): void {
    for (const l of this.listeners[type] ?? []) {
      try {
        l(event);
      } catch (err) {
        setTimeout(() => {
          throw err;
        });
      }
    }
  }
}
