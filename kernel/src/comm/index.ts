// distlab's collective communication: one Communicator interface over a
// shared-memory transport (rank threads) and a TCP transport (processes and hosts).
export type {
  Algorithm, AllReduceOptions, CollectiveOptions, CommArray, CommOptions, CommSpan, Communicator, DeviceMesh, LinkModel,
  ReduceOp, SpanHook,
} from "./types";
export type { ShmWorldInit, ShmWorldOptions } from "./shm-layout";
export { createShmWorld, attachShmCommunicator, cancelShmWorld, isShmWorldStopped } from "./shm-world";
export { CommCancelledError, CommMismatchError, CommTimeoutError, PeerLostError } from "./comm-errors";
export { parseLink } from "./link";
export { startTcpRendezvous, connectTcpWorld, type TcpWorldOptions, type Rendezvous } from "./tcp-world";
export type { WorldCredentials } from "./data-handshake";
