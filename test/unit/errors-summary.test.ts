import { test } from "node:test";
import assert from "node:assert/strict";
import { GroupError, RankError } from "../../kernel/src/errors";

const failure = (rank: number, name = "RangeError", message = "bad step") => new RankError(rank, "localhost", { name, message, stack: `${name}: ${message}` });

test("a group error names the first rank, then the others in plain English", () => {
  assert.equal(new GroupError([failure(0)]).message, "rank 0: RangeError: bad step");
  assert.equal(new GroupError([failure(0), failure(1)]).message, "rank 0: RangeError: bad step (rank 1 also failed)");
  assert.equal(new GroupError([failure(0), failure(1), failure(3)]).message, "rank 0: RangeError: bad step (ranks 1 and 3 also failed)");
  assert.equal(new GroupError([failure(0), failure(1), failure(2), failure(3)], failure(2)).message, "rank 2: RangeError: bad step (ranks 0, 1 and 3 also failed)");
});
