/**
 * Interval arithmetic on sorted, disjoint [start, end) lists (microseconds).
 */

/** Flat list [s0, e0, s1, e1, ...], sorted and disjoint. */
export type IntervalList = number[];

/** Merges possibly overlapping [start, end) pairs into a sorted disjoint list. */
export function unionOf(pairs: ReadonlyArray<readonly [number, number]>): IntervalList {
  const sorted = pairs.filter(([s, e]) => e > s).sort((a, b) => a[0] - b[0]);
  const out: IntervalList = [];
  for (const [s, e] of sorted) {
    const last = out.length - 1;
    if (last > 0 && s <= out[last]) {
      if (e > out[last]) out[last] = e;
    } else {
      out.push(s, e);
    }
  }
  return out;
}

/** Union of two disjoint lists. */
export function mergeLists(a: IntervalList, b: IntervalList): IntervalList {
  const pairs: Array<[number, number]> = [];
  for (let i = 0; i < a.length; i += 2) pairs.push([a[i], a[i + 1]]);
  for (let i = 0; i < b.length; i += 2) pairs.push([b[i], b[i + 1]]);
  return unionOf(pairs);
}

export function totalLength(list: IntervalList): number {
  let sum = 0;
  for (let i = 0; i < list.length; i += 2) sum += list[i + 1] - list[i];
  return sum;
}

/** Length of the intersection of two disjoint lists, by a two-pointer walk. */
export function intersectionLength(a: IntervalList, b: IntervalList): number {
  let i = 0;
  let j = 0;
  let sum = 0;
  while (i < a.length && j < b.length) {
    const lo = Math.max(a[i], b[j]);
    const hi = Math.min(a[i + 1], b[j + 1]);
    if (hi > lo) sum += hi - lo;
    if (a[i + 1] < b[j + 1]) i += 2;
    else j += 2;
  }
  return sum;
}
