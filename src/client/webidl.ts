/**
 * The property layout WebIDL gives an interface (WebIDL §3.7), which a
 * JavaScript class does not have by itself: attributes and operations
 * enumerable, @@toStringTag a data property of the prototype, and `length`
 * counting required arguments only.
 */

type Interface = abstract new (...args: never[]) => object;

/**
 * Applies WebIDL §3.7.1 (the constructor's `length`), §3.7.3 (@@toStringTag)
 * and §3.7.6–3.7.7 (enumerable attributes and operations) to `cls`;
 * `operationLengths` gives the operations whose optional arguments made
 * their JavaScript `length` too long.
 */
export function webIdlShape(cls: Interface, name: string, length: number, operationLengths: Record<string, number> = {}): void {
  const proto = cls.prototype as Record<PropertyKey, unknown>;
  for (const key of Object.getOwnPropertyNames(proto)) {
    if (key === 'constructor') continue;
    const d = Object.getOwnPropertyDescriptor(proto, key);
    // Constants (value, not writable) are already as WebIDL wants them.
    if (d === undefined || d.enumerable || (d.get === undefined && typeof d.value !== 'function')) continue;
    Object.defineProperty(proto, key, { ...d, enumerable: true });
  }
  Object.defineProperty(proto, Symbol.toStringTag, { value: name, writable: false, enumerable: false, configurable: true });
  Object.defineProperty(cls, 'length', { value: length });
  for (const [op, n] of Object.entries(operationLengths)) Object.defineProperty(proto[op], 'length', { value: n });
}
