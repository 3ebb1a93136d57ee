#!/usr/bin/python3
"""The broker's own acknowledgement latency at a fixed rate, through the client library the
ingress uses (librdkafka, via confluent_kafka) with the ingress's producer settings (acks=all,
idempotence) except linger: linger.ms=0, the floor (the ingress lingers 2 ms). Open-loop:
record i is due at start + i / rate, and its latency runs from that instant to its delivery report, so a stalled broker is charged in full.

  kafka_probe.py BROKERS TOPIC RATE SECONDS RECORD_BYTES   -> one JSON line on stdout
"""
import json
import sys
import time

from confluent_kafka import Producer


def pct(sorted_xs, q):
    if not sorted_xs:
        return None
    return sorted_xs[min(len(sorted_xs) - 1, int(q / 100.0 * len(sorted_xs)))]


def main():
    brokers, topic = sys.argv[1], sys.argv[2]
    rate, seconds, size = float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    p = Producer({"bootstrap.servers": brokers, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 0, "socket.nagle.disable": True})
    value = b"x" * size
    lat, errors = [], [0]

    def done(err, msg, due):
        if err is not None:
            errors[0] += 1
        else:
            lat.append((time.perf_counter() - due) * 1000.0)

    # Warm-up: connection, metadata and the idempotent producer id before the clock starts.
    for i in range(200):
        p.produce(topic, key=f"w{i}", value=value)
    p.flush(30)
    n = int(rate * seconds)
    start = time.perf_counter() + 0.05
    for i in range(n):
        due = start + i / rate
        while True:
            wait = due - time.perf_counter()
            if wait <= 0:
                break
            p.poll(wait)
        p.produce(topic, key=f"k{i}", value=value,
                  on_delivery=lambda err, msg, due=due: done(err, msg, due))
        p.poll(0)
    p.flush(60)
    lat.sort()
    print(json.dumps({"rate": rate, "sent": n, "acked": len(lat), "errors": errors[0],
                      "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "p99_ms": pct(lat, 99),
                      "p999_ms": pct(lat, 99.9), "max_ms": lat[-1] if lat else None}))


if __name__ == "__main__":
    main()
