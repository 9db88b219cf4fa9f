/**
 * Loading the optional native addons (kernel/native, built by `npm run setup`
 * with g++) of the comm layer (peer memory, dropped results, the TCP ring) and
 * of compute (the vector passes): each is switched by an environment variable
 * and left out, without an error, where it was not built or does not load here.
 */

/** `env[name]`, one of `allowed` (or undefined when unset); any other value is refused, naming the variable. */
export function addonSetting<T extends string>(env: NodeJS.ProcessEnv, name: string, allowed: readonly T[]): T | undefined {
  const value = env[name];
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new RangeError(`${name} must be ${allowed.map((a) => JSON.stringify(a)).join(" or ")}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/**
 * A getter of the addon at `file`, loaded once per thread on first use: the addon, or undefined
 * where `enabled(env)` says no (its environment switch), it was not built, or it does not load.
 */
export function addonOnce<T>(file: string, enabled: (env: NodeJS.ProcessEnv) => boolean): (env?: NodeJS.ProcessEnv) => T | undefined {
  let loaded: T | null | undefined;
  return (env = process.env) => {
    if (loaded === undefined) loaded = (enabled(env) && loadAddon<T>(file)) || null;
    return loaded ?? undefined;
  };
}

/** The addon at `file`, or undefined where it was not built (no g++ at setup) or does not load in this Node. */
export function loadAddon<T>(file: string): T | undefined {
  try {
    return require(file) as T;
  } catch {
    return undefined;
  }
}
