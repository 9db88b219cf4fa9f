/**
 * The declarations that later cells of one scope may refer to: what earlier
 * cells declared (tslab's `prevDecl`, a .d.ts text), under a fixed prelude
 * that brings in the scope's globals.
 *
 * Two chains live side by side: the notebook's own, and the ranks' one used
 * by %%distributed cells (which adds `dist` and `tf`). A chain only moves on
 * when a cell that was compiled against it has run successfully.
 */
import { NOTEBOOK_GLOBAL_NAMES, NOTEBOOK_PRELUDE, RANK_GLOBAL_NAMES, RANK_PRELUDE } from "./cell-types";
import type { CompiledCell } from "./cell-compiler";

export class DeclarationChain {
  #declarations = "";

  constructor(
    /** Says which scope this is, in errors ("notebook", "ranks"). */
    readonly name: string,
    /** Declaration text put before the earlier cells' declarations on every compile. */
    readonly prelude: string,
    /** Globals the prelude declares that the runtime passes to each cell (see CellScope). */
    readonly globalNames: readonly string[],
  ) {}

  /** The chain of plain notebook cells: globals `prompt`. */
  static notebook(): DeclarationChain {
    return new DeclarationChain("notebook", NOTEBOOK_PRELUDE, NOTEBOOK_GLOBAL_NAMES);
  }

  /** The chain of %%distributed cells: globals `dist`, `tf`, `prompt`. */
  static ranks(): DeclarationChain {
    return new DeclarationChain("ranks", RANK_PRELUDE, RANK_GLOBAL_NAMES);
  }

  /** Declarations of the cells so far (.d.ts text, without the prelude). */
  get declarations(): string {
    return this.#declarations;
  }

  /** What the compiler sees as tslab's prevDecl. */
  get withPrelude(): string {
    return this.prelude + this.#declarations;
  }

  /** Takes in a compiled cell's declarations; call once the cell has run without error. */
  advance(compiled: CompiledCell): void {
    if (compiled.chain !== this.name) {
      throw new Error(`cannot advance the ${this.name} chain with a cell compiled for the ${compiled.chain} chain`);
    }
    this.#declarations = compiled.declarations;
  }

  /** Replaces the declarations wholesale (e.g. after declaring a pushed variable). */
  replaceDeclarations(declarations: string): void {
    this.#declarations = declarations;
  }

  /** Forgets every earlier declaration (a restarted group). */
  reset(): void {
    this.#declarations = "";
  }
}
