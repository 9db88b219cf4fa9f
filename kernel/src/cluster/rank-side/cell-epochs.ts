/**
 * Which cell a rank's communication belongs to. Every call's descriptor
 * carries an epoch, the id of the cell whose code made it, so that messages
 * and collectives of an ended cell never match a later cell's: transports
 * drop frames of an older epoch and end the waits an older epoch left.
 *
 * The cell is read from an AsyncLocalStorage entered when the cell starts,
 * so a timer or promise a cell leaves running still carries that cell's id
 * when it fires in a later cell. A call whose cell has ended is refused at
 * once (CommCellEndedError naming the cell), instead of waiting for peers
 * that have moved on.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { CommCellEndedError } from "../../comm/comm-errors";

export class CellEpochs {
  private readonly cellOfCaller = new AsyncLocalStorage<number>();
  /** the running cell's id; 0 between cells */
  private running = 0;
  /** the id of the latest cell that ran (the epoch of calls made outside any cell's code) */
  private latest = 0;

  constructor(private readonly rank: number) {}

  /** Runs a cell's body as cell `cellId`: its calls, and those of timers and promises it starts, carry that id. */
  async run<T>(cellId: number, body: () => Promise<T>): Promise<T> {
    this.running = cellId;
    this.latest = cellId;
    try {
      return await this.cellOfCaller.run(cellId, body);
    } finally {
      if (this.running === cellId) this.running = 0;
    }
  }

  /** CommOptions.epoch: the epoch of a call made now; throws when the calling code's cell has ended. */
  readonly epochOf = (call: string): number => {
    const cell = this.cellOfCaller.getStore();
    if (cell === undefined) return this.running || this.latest; // not a cell's code (the kernel's own calls)
    if (cell === this.running) return cell;
    const now = this.running ? `cell ${this.running} is running now` : "no cell is running now";
    throw new CommCellEndedError(
      this.rank,
      call,
      cell,
      `refused: cell ${cell} has ended and ${now}. Its code (a timer, or a promise it did not await) may not communicate after the cell; await communication inside the cell that starts it`,
    );
  };
}
