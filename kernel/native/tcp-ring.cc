// The ring allReduce between rank processes on different hosts, run on a
// thread of libuv's pool over two TCP connections the rank owns outright: one
// to its right neighbour (rank + 1 mod n), one from its left (rank - 1 mod n).
// kernel/src/comm/tcp-native-ring.ts says when it is used.
//
// Why native code: between 3 hosts sharing 2 cores a call is bound by CPU,
// and the JavaScript ring spent twice gloo's user time a call on Node's stream
// and promise machinery around ~350 reads and writes of 64 MiB
// (docs/benchmarks.md, "Hosts"). Here a call is
// a loop of poll/send/recv with the sums added as bytes land, as gloo's C++
// ring does, and the event loop stays free (the JavaScript side answers the
// other ranks' probes, times the call out, cancels it).
//
// Exports:
//   adopt(fd, early) -> fd     a duplicate of fd (close-on-exec): the connection, kept open after its
//                              net.Socket is destroyed; `early` (a Uint8Array,
//                              maybe empty) holds bytes JavaScript read past the
//                              handshake, handed to the first receive
//   close(fd)
//   allReduce(sendFd, recvFd, array, dtype, redop, rank, n, header, leftHeader, control, done)
//       array: the typed array reduced in place (its memory held until done);
//       dtype 0 float32, 1 float64, 2 int32; redop 0 sum, 2 max, 3 min, 4 product
//       (REDUCE_OPS in descriptor.ts; mean is a sum the caller divides);
//       header: Int32Array(8), this rank's call descriptor (descriptor.ts's words), sent to
//       the right first and compared with the left's as descriptorsAgree does;
//       leftHeader: Int32Array(8), filled with the left neighbour's;
//       control: Int32Array over a SharedArrayBuffer, [0] = 1 asks the call to stop
//       (checked every kPollMs), [1] counts receives and sends that moved bytes
//       (the caller's sign of life);
//       done(error: string | null, headerMismatch: boolean, bytesSent, bytesReceived)
//       on the JavaScript thread.
//
// The ring: the array cut into n blocks (block b = [floor(b*count/n), floor((b+1)*count/n))).
// Reduce-scatter step s = 0..n-2: send block (rank - s) to the right, receive block
// (rank - s - 1) from the left and combine it in; rank r then holds block r + 1 reduced.
// All-gather step s: send block (rank + 1 - s), receive block (rank - s) in place. Every
// element is combined in the same order on its way round, so every rank ends with the same
// bits. The steps run as one pipeline: the block sent at step t is the one received at step t-1,
// and the prefix of it that has landed goes on while its end still arrives (transfer()).
#include <node_api.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace {

constexpr int kHeaderWords = 8;
/** How long one poll waits before the stop word is read again, ms. */
constexpr int kPollMs = 20;
/** Largest receive that is combined, bytes: big enough for few system calls, small enough to combine in cache. */
constexpr size_t kIoBytes = 1 << 20;

/** Bytes read past a connection's handshake by JavaScript, by adopted fd, for its first receive. */
std::mutex early_mutex;
std::map<int, std::vector<uint8_t>> early_bytes;

napi_value Fail(napi_env env, const char* message) {
  napi_throw_error(env, nullptr, message);
  return nullptr;
}

bool TypedArrayData(napi_env env, napi_value value, napi_typedarray_type* type, void** data, size_t* bytes) {
  bool is_typed = false;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return false;
  size_t length;
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, value, type, &length, data, &buffer, &offset) != napi_ok) return false;
  size_t width = 1;
  switch (*type) {
    case napi_int16_array: case napi_uint16_array: width = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: width = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: width = 8; break;
    default: break;
  }
  *bytes = length * width;
  return true;
}

napi_value Adopt(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t fd;
  napi_typedarray_type type;
  void* data = nullptr;
  size_t bytes = 0;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 || !TypedArrayData(env, argv[1], &type, &data, &bytes)) {
    return Fail(env, "adopt: expected (fd, early bytes)");
  }
  // close-on-exec, as Node's own descriptors are: a process the rank spawns must not keep the
  // ring's connection open after the rank is gone (its neighbours would never see it close)
  const int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return Fail(env, (std::string("adopt: dup failed: ") + std::strerror(errno)).c_str());
  if (bytes > 0) {
    std::lock_guard<std::mutex> lock(early_mutex);
    early_bytes[copy].assign(static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + bytes);
  }
  napi_value result;
  napi_create_int32(env, copy, &result);
  return result;
}

napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t fd;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) return Fail(env, "close: expected (fd)");
  {
    std::lock_guard<std::mutex> lock(early_mutex);
    early_bytes.erase(fd);
  }
  close(fd);
  return nullptr;
}

// into[i] = op(into[i], from[i]), as reduce-js.ts does: a NaN on either side wins max and min.
template <typename T>
void Combine(T* into, const T* from, size_t count, int redop) {
  switch (redop) {
    case 2: for (size_t i = 0; i < count; i++) into[i] = into[i] >= from[i] || into[i] != into[i] ? into[i] : from[i]; break;
    case 3: for (size_t i = 0; i < count; i++) into[i] = into[i] <= from[i] || into[i] != into[i] ? into[i] : from[i]; break;
    case 4: for (size_t i = 0; i < count; i++) into[i] = into[i] * from[i]; break;
    default: for (size_t i = 0; i < count; i++) into[i] = into[i] + from[i]; break;
  }
}

// int32 sums and products wrap as an Int32Array's stores do (done in uint32: signed overflow is
// undefined in C++).
template <>
void Combine(int32_t* into, const int32_t* from, size_t count, int redop) {
  uint32_t* u = reinterpret_cast<uint32_t*>(into);
  const uint32_t* v = reinterpret_cast<const uint32_t*>(from);
  switch (redop) {
    case 2: for (size_t i = 0; i < count; i++) into[i] = into[i] >= from[i] ? into[i] : from[i]; break;
    case 3: for (size_t i = 0; i < count; i++) into[i] = into[i] <= from[i] ? into[i] : from[i]; break;
    case 4: for (size_t i = 0; i < count; i++) u[i] = u[i] * v[i]; break;
    default: for (size_t i = 0; i < count; i++) u[i] = u[i] + v[i]; break;
  }
}

/** One call's state, from allReduce to done. */
struct RingCall {
  napi_async_work work = nullptr;
  // what JavaScript passed that the pool thread reads or writes, held until done (the header is copied)
  napi_ref array_ref = nullptr, left_header_ref = nullptr, control_ref = nullptr, done_ref = nullptr;
  int send_fd = -1, recv_fd = -1;
  uint8_t* data = nullptr;
  size_t count = 0;
  int dtype = 0, redop = 0, rank = 0, n = 0;
  int32_t header[kHeaderWords] = {};
  int32_t* left_header = nullptr;
  int32_t* control = nullptr;
  // results
  std::string error;
  bool header_mismatch = false;
  double sent = 0, received = 0;
  // receive staging for combined blocks (kIoBytes + one element of carry)
  std::vector<uint8_t> staging;

  size_t width() const { return dtype == 1 ? 8 : 4; }
  size_t block_start(int b) const { return static_cast<size_t>((static_cast<unsigned __int128>(b) * count) / n); }
  bool stop_asked() const { return __atomic_load_n(&control[0], __ATOMIC_ACQUIRE) != 0; }
  void alive() { __atomic_fetch_add(&control[1], 1, __ATOMIC_RELEASE); }

  void combine(uint8_t* into, const uint8_t* from, size_t elements) {
    if (dtype == 0) Combine(reinterpret_cast<float*>(into), reinterpret_cast<const float*>(from), elements, redop);
    else if (dtype == 1) Combine(reinterpret_cast<double*>(into), reinterpret_cast<const double*>(from), elements, redop);
    else Combine(reinterpret_cast<int32_t*>(into), reinterpret_cast<const int32_t*>(from), elements, redop);
  }

  /** Bytes JavaScript read past the receive connection's handshake, taken once. */
  size_t take_early(uint8_t* into, size_t max) {
    std::lock_guard<std::mutex> lock(early_mutex);
    auto found = early_bytes.find(recv_fd);
    if (found == early_bytes.end()) return 0;
    std::vector<uint8_t>& bytes = found->second;
    const size_t k = std::min(max, bytes.size());
    std::memcpy(into, bytes.data(), k);
    bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(k));
    if (bytes.empty()) early_bytes.erase(found);
    return k;
  }

  /** A run of bytes to send: `need` is the receive segment whose landed prefix it waits for (-1: none). */
  struct OutSegment {
    const uint8_t* at;
    size_t bytes;
    int need;
  };
  /** A run of bytes to receive, `combined` into what lies there or written over it. */
  struct InSegment {
    uint8_t* at;
    size_t bytes;
    bool combined;
  };

  /**
   * Sends the out segments, in order, to the right while receiving the in segments, in order,
   * from the left, as one pipeline: an out segment that waits for an in segment (the ring forwards
   * what it just received) sends the prefix of it that has landed, so a block moves on while its
   * end is still arriving. Received bytes of a combined segment go through staging and are
   * combined element by element as they arrive. Waits in poll() only for a socket that can move
   * bytes. False with `error` set on a failure or a stop.
   */
  bool transfer(const std::vector<OutSegment>& outs, const std::vector<InSegment>& ins) {
    size_t out_i = 0, out_done = 0;  // the segment being sent, and its bytes sent
    size_t in_i = 0, in_done = 0;    // the segment being received, and its bytes landed (combined)
    size_t staged = 0;               // bytes of a combined segment in staging, short of a whole element
    const size_t w = width();
    if (staging.size() < kIoBytes + w) staging.resize(kIoBytes + w);
    auto skip_empty = [&]() {
      while (out_i < outs.size() && out_done == outs[out_i].bytes) out_i++, out_done = 0;
      while (in_i < ins.size() && in_done == ins[in_i].bytes) in_i++, in_done = 0;
    };
    skip_empty();
    while (out_i < outs.size() || in_i < ins.size()) {
      if (stop_asked()) return failed("stopped");
      // how much of the current out segment may go now
      size_t sendable = 0;
      if (out_i < outs.size()) {
        const OutSegment& o = outs[out_i];
        const size_t landed_of_need = o.need < 0 || static_cast<size_t>(o.need) < in_i ? o.bytes : static_cast<size_t>(o.need) == in_i ? in_done : 0;
        sendable = landed_of_need > out_done ? landed_of_need - out_done : 0;
      }
      const bool receiving = in_i < ins.size();
      bool can_out = false, can_in = false;
      // bytes JavaScript read past the handshake are this connection's first
      size_t early = 0;
      if (receiving) {
        const InSegment& in = ins[in_i];
        uint8_t* to = in.combined ? staging.data() + staged : in.at + in_done;
        early = take_early(to, in.combined ? std::min(in.bytes - in_done - staged, kIoBytes) : in.bytes - in_done);
        if (early > 0) landed(in, in_done, staged, early);
      }
      if (early == 0) {
        pollfd fds[2];
        int nfds = 0, out_at = -1, in_at = -1;
        if (sendable > 0) { fds[nfds] = {send_fd, POLLOUT, 0}; out_at = nfds++; }
        if (receiving) { fds[nfds] = {recv_fd, POLLIN, 0}; in_at = nfds++; }
        const int ready = poll(fds, nfds, kPollMs);
        if (ready < 0 && errno != EINTR) return failed(std::string("poll: ") + std::strerror(errno));
        if (ready <= 0) continue;
        can_out = out_at >= 0 && fds[out_at].revents != 0;
        can_in = in_at >= 0 && fds[in_at].revents != 0;
      }
      if (can_out) {
        const OutSegment& o = outs[out_i];
        const ssize_t k = send(send_fd, o.at + out_done, std::min(sendable, kIoBytes), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k > 0) {
          out_done += static_cast<size_t>(k);
          sent += static_cast<double>(k);
          alive();
        } else if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          return failed(std::string("sending to the right neighbour: ") + std::strerror(errno));
        }
      }
      if (can_in) {
        const InSegment& in = ins[in_i];
        uint8_t* to = in.combined ? staging.data() + staged : in.at + in_done;
        // never past the segment: the next one may be combined where this one is not
        const size_t room = in.combined ? std::min(in.bytes - in_done - staged, kIoBytes) : in.bytes - in_done;
        const ssize_t k = recv(recv_fd, to, room, MSG_DONTWAIT);
        if (k == 0) return failed("the left neighbour closed the connection (process exited or link cut)");
        if (k > 0) landed(in, in_done, staged, static_cast<size_t>(k));
        else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return failed(std::string("receiving from the left neighbour: ") + std::strerror(errno));
      }
      skip_empty();
    }
    return true;
  }

  /** `k` new bytes of `in` arrived (at in.at + done, or after `staged` bytes of staging): count them, combine whole elements. */
  void landed(const InSegment& in, size_t& done, size_t& staged, size_t k) {
    received += static_cast<double>(k);
    alive();
    if (!in.combined) {
      done += k;
      return;
    }
    const size_t w = width();
    staged += k;
    const size_t whole = staged / w;
    combine(in.at + done, staging.data(), whole);
    done += whole * w;
    const size_t carry = staged - whole * w;
    if (carry > 0) std::memmove(staging.data(), staging.data() + whole * w, carry);
    staged = carry;
  }

  bool failed(const std::string& why) {
    error = why;
    return false;
  }

  void run() {
    // the descriptors first: a left neighbour in another call (other length, dtype or op) is
    // caught before any of its data is read as this call's
    if (!transfer({{reinterpret_cast<const uint8_t*>(header), sizeof header, -1}}, {{reinterpret_cast<uint8_t*>(left_header), sizeof header, false}})) return;
    // every word alike, but the shape hash (word 7) where either side gave none (descriptorsAgree)
    bool agree = std::memcmp(header, left_header, 7 * sizeof(int32_t)) == 0;
    agree = agree && (header[7] == left_header[7] || header[7] == 0 || left_header[7] == 0);
    if (!agree) {
      header_mismatch = true;
      error = "the left neighbour is in another call";
      return;
    }
    // Step t of 2(n-1): reduce-scatter for t < n-1, all-gather after. The block sent at step t is
    // the one received at step t-1 (from step 1 on), so each out segment waits for that in segment.
    const size_t w = width();
    auto block = [&](int b) { return (b % n + n) % n; };
    std::vector<OutSegment> outs;
    std::vector<InSegment> ins;
    for (int t = 0; t < 2 * (n - 1); t++) {
      const bool scatter = t < n - 1;
      const int out_b = scatter ? block(rank - t) : block(rank + 1 - (t - (n - 1)));
      const int in_b = scatter ? block(rank - t - 1) : block(rank - (t - (n - 1)));
      outs.push_back({data + block_start(out_b) * w, (block_start(out_b + 1) - block_start(out_b)) * w, t - 1});
      ins.push_back({data + block_start(in_b) * w, (block_start(in_b + 1) - block_start(in_b)) * w, scatter});
    }
    transfer(outs, ins);
  }
};

void Execute(napi_env, void* raw) { static_cast<RingCall*>(raw)->run(); }

void Complete(napi_env env, napi_status, void* raw) {
  RingCall* call = static_cast<RingCall*>(raw);
  napi_value done, global, argv[4], ignored;
  napi_get_reference_value(env, call->done_ref, &done);
  napi_get_global(env, &global);
  if (call->error.empty()) napi_get_null(env, &argv[0]);
  else napi_create_string_utf8(env, call->error.c_str(), call->error.size(), &argv[0]);
  napi_get_boolean(env, call->header_mismatch, &argv[1]);
  napi_create_double(env, call->sent, &argv[2]);
  napi_create_double(env, call->received, &argv[3]);
  for (napi_ref ref : {call->array_ref, call->left_header_ref, call->control_ref, call->done_ref}) napi_delete_reference(env, ref);
  napi_delete_async_work(env, call->work);
  delete call;
  napi_call_function(env, global, done, 4, argv, &ignored);
}

napi_value AllReduce(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 11) return Fail(env, "allReduce: expected (sendFd, recvFd, array, dtype, redop, rank, n, header, leftHeader, control, done)");
  RingCall* call = new RingCall();
  int32_t ints[5];
  napi_typedarray_type type;
  void* data;
  size_t bytes;
  bool ok = napi_get_value_int32(env, argv[0], &call->send_fd) == napi_ok && napi_get_value_int32(env, argv[1], &call->recv_fd) == napi_ok;
  for (int i = 0; ok && i < 4; i++) ok = napi_get_value_int32(env, argv[3 + i], &ints[i]) == napi_ok;
  ok = ok && TypedArrayData(env, argv[2], &type, &data, &bytes);
  if (ok) {
    call->dtype = ints[0];
    call->redop = ints[1];
    call->rank = ints[2];
    call->n = ints[3];
    call->data = static_cast<uint8_t*>(data);
    const bool dtype_ok = (call->dtype == 0 && type == napi_float32_array) || (call->dtype == 1 && type == napi_float64_array) || (call->dtype == 2 && type == napi_int32_array);
    ok = dtype_ok && (call->redop == 0 || (call->redop >= 2 && call->redop <= 4)) && call->n >= 2 && call->rank >= 0 && call->rank < call->n;
    call->count = bytes / call->width();
  }
  void* header;
  size_t header_bytes;
  void* left;
  size_t left_bytes;
  void* control;
  size_t control_bytes;
  ok = ok && TypedArrayData(env, argv[7], &type, &header, &header_bytes) && header_bytes == sizeof call->header;
  ok = ok && TypedArrayData(env, argv[8], &type, &left, &left_bytes) && left_bytes == sizeof call->header;
  ok = ok && TypedArrayData(env, argv[9], &type, &control, &control_bytes) && type == napi_int32_array && control_bytes >= 8;
  napi_valuetype done_type;
  ok = ok && napi_typeof(env, argv[10], &done_type) == napi_ok && done_type == napi_function;
  if (!ok) {
    delete call;
    return Fail(env, "allReduce: bad arguments (a float32, float64 or int32 array; redop sum, max, min or product; n >= 2; 8-word headers; an Int32Array control)");
  }
  std::memcpy(call->header, header, sizeof call->header);
  call->left_header = static_cast<int32_t*>(left);
  call->control = static_cast<int32_t*>(control);
  napi_create_reference(env, argv[2], 1, &call->array_ref);
  napi_create_reference(env, argv[8], 1, &call->left_header_ref);
  napi_create_reference(env, argv[9], 1, &call->control_ref);
  napi_create_reference(env, argv[10], 1, &call->done_ref);
  napi_value name;
  napi_create_string_utf8(env, "distlab.tcpRing.allReduce", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, nullptr, name, Execute, Complete, call, &call->work);
  napi_queue_async_work(env, call->work);
  return nullptr;
}

}  // namespace

NAPI_MODULE_INIT() {
  struct Export {
    const char* name;
    napi_callback fn;
  };
  const Export exports_list[] = {{"adopt", Adopt}, {"close", Close}, {"allReduce", AllReduce}};
  for (const Export& f : exports_list) {
    napi_value value;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.fn, nullptr, &value);
    napi_set_named_property(env, exports, f.name, value);
  }
  return exports;
}
