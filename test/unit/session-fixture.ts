/**
 * A DistributedSession for a test file: made (with its cell compiler and timeline observer)
 * before the file's tests, stopped after them. Read `fixture.session` and `fixture.observer`
 * inside tests, not at module level (they exist only once `before` ran).
 */
import { after, before } from "node:test";
import { CellCompiler } from "../../kernel/src/repl/cell-compiler";
import { DistributedSession } from "../../kernel/src/cluster/kernel-side/distributed-session";
import { TimelineObserver } from "../../kernel/src/cluster/kernel-side/timeline-observer";

export interface SessionFixture {
  readonly compiler: CellCompiler;
  readonly session: DistributedSession;
  readonly observer: TimelineObserver;
}

/** `timeline: false`: a session without a timeline observer (its cells display no timeline). */
export function distributedSessionFixture(options: { timeline?: boolean } = {}): SessionFixture {
  let compiler: CellCompiler | undefined;
  let observer: TimelineObserver | undefined;
  let session: DistributedSession | undefined;
  before(() => {
    compiler = new CellCompiler();
    observer = options.timeline === false ? undefined : new TimelineObserver();
    session = new DistributedSession(compiler, observer);
  });
  after(async () => {
    await session?.stop();
    compiler?.close();
  });
  const made = <T>(value: T | undefined, name: string): T => {
    if (value === undefined) throw new Error(`the session fixture's ${name} is made in before(); read it inside a test`);
    return value;
  };
  return {
    get compiler() {
      return made(compiler, "compiler");
    },
    get session() {
      return made(session, "session");
    },
    get observer() {
      return made(observer, "observer");
    },
  };
}
