/** At most `n` of the calls given to the returned function run at once; the others wait their turn, in order. */
export function limiter(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((r) => waiting.push(r));
    else active++;
    try {
      return await fn();
    } finally {
      // The slot passes straight to the next waiter (active unchanged), or is freed.
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}
