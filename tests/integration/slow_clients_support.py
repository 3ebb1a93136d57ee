"""Slow clients and steady normal traffic for tests/integration/test_slow_clients.py.

The slow clients run in their own process (``python3 slow_clients_support.py PORT ...``) so
that their event loop does not share an interpreter lock with the normal traffic whose
latency is measured. Each of the N connections plays one kind, over and over until told to
stop (a line on stdin), opening a new connection whenever the server cut the last one:

- ``headers``: the request line and headers, one byte every ``--interval`` seconds;
- ``body``: complete, signed headers with a Content-Length at once, then the body one byte at
  a time (it would take minutes to complete);
- ``idle``: connects and sends nothing;
- ``keepalive``: one complete signed request at once, reads the answer, then stays idle on the
  kept-alive connection;
- ``unread``: complete headers announcing a body to an endpoint that reads none (a refusal),
  then that body one byte at a time: the answer must come at once and the connection close,
  rather than the server reading the body it does not need at the client's pace.

The driver prints ``ready`` once every connection has been opened and has sent its first byte.
Told to stop, it opens no new connection and waits for the server to end the open ones (each
at most ``--limit`` seconds after it began), then prints one JSON line: per connection attempt
its kind, the message id it signed (if any), how long the server let it live (from connect, or
from the answer for ``keepalive``), what the server sent back and how it ended (``eof``,
``reset``, or ``open`` when the server had not ended it by the limit).
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import http.client
import json
import math
import sys
import threading
import time

KINDS = ("headers", "body", "idle", "keepalive", "unread")


def sign_standard(secret, msg_id, ts, body):
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": "v1," + base64.b64encode(mac).decode()}


def signed_request(secret, msg_id, body, source="demo"):
    """The bytes of one complete signed POST: (head, body)."""
    h = sign_standard(secret, msg_id, int(time.time()), body)
    lines = [f"POST /v1/webhooks/{source} HTTP/1.1", "Host: 127.0.0.1",
             "Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in h.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), body


def slow_requests(target, secret, msg_id):
    """What each kind sends to `target` ("ingress" or "auditor"): {kind: (head, body)}; the
    ``headers`` head never ends in time, the ``body`` body is trickled, ``keepalive`` is one
    complete request."""
    pad = b"X-Pad: " + b"a" * 4096 + b"\r\n\r\n"
    if target == "ingress":
        head, _ = signed_request(secret, msg_id, b"{}")
        slow_head = head[:-2] + pad
        body_head, body = signed_request(
            secret, msg_id, json.dumps({"type": "slow.body", "pad": "b" * 2000}).encode())
        ka = signed_request(secret, msg_id, json.dumps({"type": "slow.keepalive"}).encode())
        unread_path = b"/nowhere"
    else:
        slow_head = b"GET /v1/gaps HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer x\r\n" + pad
        body = b"token=" + b"t" * 900 + b"&next=/"
        body_head = (b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        ka = (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"")
        unread_path = b"/v1/gaps"
    unread = (b"POST " + unread_path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              b"Content-Type: application/json\r\nContent-Length: 2000\r\n\r\n", b"{" * 2000)
    return {"headers": (slow_head, b""), "body": (body_head, body), "keepalive": ka,
            "unread": unread}


# --- the slow side ------------------------------------------------------------------------

class Attempt:
    def __init__(self, kind, msg_id):
        self.kind = kind
        self.msg_id = msg_id
        self.start = time.monotonic()
        self.end = None
        self.received = b""
        self.how = None          # "eof", "reset" or "open" (still open when told to stop)
        self.sent = 0

    def record(self):
        status = None
        if self.received[:9] in (b"HTTP/1.1 ", b"HTTP/1.0 "):
            status = int(self.received[9:12])
        return {"kind": self.kind, "msg_id": self.msg_id, "lived_s": round(self.end - self.start, 3),
                "status": status, "how": self.how, "sent": self.sent}


async def _read_until_closed(reader, att):
    try:
        while True:
            chunk = await reader.read(4096)
            if not chunk:
                att.how = "eof"
                return
            att.received += chunk
    except (ConnectionResetError, BrokenPipeError):
        att.how = "reset"
    except asyncio.CancelledError:
        att.how = "open"
        raise


async def _trickle(writer, att, data, interval, closed):
    for i in range(len(data)):
        if closed.is_set():
            return
        try:
            writer.write(data[i:i + 1])
            await writer.drain()
            att.sent += 1
        except (ConnectionResetError, BrokenPipeError):
            return
        try:
            await asyncio.wait_for(closed.wait(), interval)
            return
        except asyncio.TimeoutError:
            pass


async def _keepalive_first(reader, writer, att, head, body):
    """Sends one complete request and reads its answer; afterwards the connection idles."""
    writer.write(head + body)
    await writer.drain()
    att.sent = len(head) + len(body)
    line = await reader.readline()
    hdrs = {}
    while True:
        h = await reader.readline()
        if h in (b"\r\n", b""):
            break
        k, _, v = h.decode().partition(":")
        hdrs[k.strip().lower()] = v.strip()
    await reader.readexactly(int(hdrs.get("content-length", "0")))
    att.first_status = int(line[9:12]) if line[:9] in (b"HTTP/1.1 ", b"HTTP/1.0 ") else None
    att.start = time.monotonic()  # the idle time is what the server must bound


async def _one_attempt(port, kind, n, seq, args, stop, ready):
    msg_id = f"slow-{kind}-{args.tag}-{n}-{seq}"
    att = Attempt(kind, msg_id)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        att.end = time.monotonic()
        att.how = "connect_failed"
        return att
    att.start = time.monotonic()
    closed = asyncio.Event()
    read_task = None
    reqs = slow_requests(args.target, args.secret, msg_id)
    try:
        if kind == "keepalive":
            await _keepalive_first(reader, writer, att, *reqs["keepalive"])
        read_task = asyncio.ensure_future(_read_until_closed(reader, att))
        read_task.add_done_callback(lambda _t: closed.set())
        if kind == "headers":
            data = reqs["headers"][0]
            first = asyncio.ensure_future(_trickle(writer, att, data, args.interval, closed))
        elif kind in ("body", "unread"):
            head, body = reqs[kind]
            writer.write(head)
            await writer.drain()
            att.sent = len(head)
            first = asyncio.ensure_future(_trickle(writer, att, body, args.interval, closed))
        else:
            first = None
        ready(n)
        waiters = [asyncio.ensure_future(closed.wait()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()
        if not closed.is_set():
            # Told to stop: the server must still end this connection, within the limit.
            left = args.limit - (time.monotonic() - att.start)
            try:
                await asyncio.wait_for(closed.wait(), max(0.0, left))
            except asyncio.TimeoutError:
                pass
        if first is not None:
            first.cancel()
    except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as e:
        att.how = att.how or ("reset" if not isinstance(e, asyncio.IncompleteReadError) else "eof")
    att.end = time.monotonic()
    if read_task is not None and not read_task.done():
        read_task.cancel()
        try:
            await read_task
        except asyncio.CancelledError:
            pass
    att.how = att.how or "open"
    writer.close()
    return att


async def run_slow(port, args):
    stop = asyncio.Event()
    started = set()
    results = []
    kinds = [KINDS[i % len(KINDS)] if args.kinds == "mix" else args.kinds for i in range(args.n)]
    loop = asyncio.get_running_loop()

    def ready(n):
        if n not in started:
            started.add(n)
            if len(started) == args.n:
                print("ready", flush=True)

    async def conn_loop(n):
        seq = 0
        while not stop.is_set():
            began = time.monotonic()
            att = await _one_attempt(port, kinds[n], n, seq, args, stop, ready)
            results.append(att)
            seq += 1
            # At most one new connection per slot and interval: a slot the server ends at once
            # (``unread``) reconnects at the byte rate, not as fast as it can.
            await asyncio.sleep(max(0.0, args.interval - (time.monotonic() - began)))

    def wait_stdin():
        sys.stdin.readline()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_stdin, daemon=True).start()
    tasks = []
    for n in range(args.n):
        tasks.append(asyncio.ensure_future(conn_loop(n)))
        if n % 50 == 49:
            await asyncio.sleep(0.05)  # a burst, not a single SYN flood
    await asyncio.gather(*tasks)
    out = {"attempts": [a.record() | {"first_status": getattr(a, "first_status", None)}
                        for a in results]}
    print(json.dumps(out), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--kinds", default="mix", choices=("mix",) + KINDS)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--target", default="ingress", choices=("ingress", "auditor"))
    p.add_argument("--secret", default="whsec_" + base64.b64encode(b"unused").decode())
    p.add_argument("--tag", default="t")
    p.add_argument("--limit", type=float, default=30.0,
                   help="seconds a connection may live before the server is deemed to have failed")
    args = p.parse_args()
    asyncio.run(run_slow(args.port, args))


# --- the normal side ----------------------------------------------------------------------

def webhooks(secret, tag):
    """make_request for steady_traffic: signed webhooks to the ingress's demo source, each
    with its own message id."""
    def make(w, i):
        msg_id = f"norm-{tag}-{w}-{i}"
        body = json.dumps({"type": "normal.event", "i": i}).encode()
        h = {"Content-Type": "application/json", **sign_standard(secret, msg_id, int(time.time()), body)}
        return "POST", "/v1/webhooks/demo", body, h, msg_id
    return make


def steady_traffic(port, rate, duration, connections, make_request, per_connection=100,
                   give_up=10.0):
    """Requests made by make_request(worker, i) -> (method, path, body, headers, id) at a fixed
    total rate over `connections` keep-alive connections (each replaced after `per_connection`
    requests). Each request's latency is counted from the moment it was due, so a stalled
    server shows up in full rather than as fewer requests. A request still unanswered
    `give_up` seconds after it was due fails, and so does every request due after the run
    should have ended plus `give_up` (status None), so a starved server fails the caller
    quickly instead of holding it. Returns a list of (latency_s, status, id)."""
    out = []
    lock = threading.Lock()
    t0 = time.monotonic() + 0.05
    per = rate / connections
    count = int(duration * per)
    end = t0 + duration + give_up

    def worker(w):
        conn = None
        mine = []
        for i in range(count):
            due = t0 + (i + w / connections) / per
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            method, path, body, h, msg_id = make_request(w, i)
            if time.monotonic() > end:
                mine.append((time.monotonic() - due, None, msg_id))
                continue
            if conn is None or i % per_connection == 0:
                if conn is not None:
                    conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=give_up)
            try:
                conn.request(method, path, body=body, headers=h)
                r = conn.getresponse()
                r.read()
                status = r.status
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                status = None
                conn.close()
                conn = None
            mine.append((time.monotonic() - due, status, msg_id))
        if conn is not None:
            conn.close()
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def percentile(values, q):
    """Nearest-rank percentile q (0-100] of values."""
    s = sorted(values)
    if not s:
        return float("nan")
    return s[min(len(s), max(1, math.ceil(q / 100.0 * len(s)))) - 1]


if __name__ == "__main__":
    main()
