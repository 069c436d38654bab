#!/usr/bin/env python3
"""bench/fleet_proxy.py: a counting HTTP/1.1 proxy for bench/fleet.sh.

It sits between the sidecars and OpenBao (or moto) and counts, per second of
wall-clock time, what crosses it: requests as they arrive from the clients
(what the fleet sends), and answers as they come back, by status (2xx, 429,
other). It forwards bytes unchanged, one request at a time per connection
(keep-alive, no pipelining: what reqwest and the AWS SDK do), and drops the
upstream connection when the client gives up, as a direct connection would.

Every second it appends a line to the CSV file named by --out:

    second,sent,ok,throttled,other,dropped,ids,<op>...

where `second` is the Unix time, `sent` the requests that arrived in it,
`ok`/`throttled`/`other` the answers by status that went back in it, and
`dropped` the requests whose client closed before the answer (a timeout),
and `ids` the secret ids asked for by BatchGetSecretValue requests. With
--ops, the X-Amz-Target operation of each request is counted too, one column
per operation named there (comma-separated).

Usage: fleet_proxy.py --listen PORT --upstream PORT --out FILE [--ops A,B]
It prints "ready" on stdout once listening, and runs until SIGTERM.
"""

import argparse
import asyncio
import json
import signal
import sys
import time
from collections import defaultdict

COLUMNS = ["sent", "ok", "throttled", "other", "dropped", "ids"]


class Counter:
    def __init__(self, ops):
        self.ops = ops
        self.seconds = defaultdict(lambda: defaultdict(int))

    def add(self, key, n=1):
        self.seconds[int(time.time())][key] += n

    def flush(self, out, upto):
        """Writes every second before `upto` that has not been written yet."""
        for sec in sorted(s for s in self.seconds if s < upto):
            row = self.seconds.pop(sec)
            cols = [row.get(k, 0) for k in COLUMNS] + [row.get("op:" + o, 0) for o in self.ops]
            out.write(",".join(str(v) for v in [sec, *cols]) + "\n")
        out.flush()


async def read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        if b":" in line:
            k, v = line.split(b":", 1)
            headers[k.strip().lower()] = v.strip()
    return head, lines[0], headers


async def read_body(reader, headers, no_body=False):
    """The body as raw bytes: by Content-Length, chunked, or none."""
    if no_body:
        return b""
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            parts.append(size_line)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                # Trailers, then the blank line.
                while True:
                    line = await reader.readuntil(b"\r\n")
                    parts.append(line)
                    if line == b"\r\n":
                        return b"".join(parts)
            parts.append(await reader.readexactly(size + 2))
    length = int(headers.get(b"content-length", b"0"))
    return await reader.readexactly(length) if length else b""


async def answer(reader):
    head, status_line, headers = await read_head(reader)
    status = int(status_line.split(b" ")[1])
    no_body = status in (204, 304) or 100 <= status < 200
    body = await read_body(reader, headers, no_body)
    return status, head + body


def serve(counter, upstream):
    async def handle(creader, cwriter):
        ureader = uwriter = None
        try:
            while True:
                try:
                    head, _, headers = await read_head(creader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                counter.add("sent")
                target = headers.get(b"x-amz-target")
                if target:
                    counter.add("op:" + target.decode().rsplit(".", 1)[-1])
                body = await read_body(creader, headers)
                if target and target.endswith(b".BatchGetSecretValue"):
                    try:
                        counter.add("ids", len(json.loads(body).get("SecretIdList", [])))
                    except ValueError:
                        pass
                if uwriter is None:
                    ureader, uwriter = await asyncio.open_connection("127.0.0.1", upstream)
                uwriter.write(head + body)
                await uwriter.drain()
                reply = asyncio.ensure_future(answer(ureader))
                gone = asyncio.ensure_future(creader.read(1))
                done, _ = await asyncio.wait({reply, gone}, return_when=asyncio.FIRST_COMPLETED)
                if reply not in done:
                    # The client closed (gave up): so does this side.
                    reply.cancel()
                    counter.add("dropped")
                    return
                gone.cancel()
                try:
                    status, raw = reply.result()
                except (asyncio.IncompleteReadError, ConnectionError):
                    counter.add("dropped")
                    return
                key = "ok" if 200 <= status < 300 else "throttled" if status == 429 else "other"
                counter.add(key)
                cwriter.write(raw)
                await cwriter.drain()
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            counter.add("dropped")
        finally:
            for w in (cwriter, uwriter):
                if w is not None:
                    w.close()

    return handle


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--upstream", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ops", default="")
    args = ap.parse_args()
    ops = [o for o in args.ops.split(",") if o]
    counter = Counter(ops)
    server = await asyncio.start_server(
        serve(counter, args.upstream), "127.0.0.1", args.listen, backlog=4096
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with open(args.out, "w") as out:
        out.write(",".join(["second", *COLUMNS, *ops]) + "\n")
        print("ready", flush=True)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0 - time.time() % 1.0)
            except asyncio.TimeoutError:
                pass
            counter.flush(out, int(time.time()))
        server.close()
        counter.flush(out, int(time.time()) + 1)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
