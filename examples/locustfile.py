"""A Locust test over wstool's client: `locust -f examples/locustfile.py`.

Needs `pip install 'wstool[locust]'`. Against wstool's own echo server
(`wstool serve-echo --port 8765`), on one machine, headless for 30 s:

    locust -f examples/locustfile.py --host ws://127.0.0.1:8765/ \
        --headless -u 20 -r 10 -t 30s --stop-timeout 5 --csv results

Over several machines: a master (`--master`, add `--expect-workers N` with
--headless) and on each machine `locust -f examples/locustfile.py --worker
--master-host MASTER`. Each connect and each round trip is a Locust request of
type "WS": "connect", "text" and "subscribe" below (tests/test_locust.py runs
this file with a master and two workers against serve-echo).
"""

from __future__ import annotations

import json

from locust import constant, task

from wstool.locust import WebSocketUser


class EchoUser(WebSocketUser):
    # url = "wss://example.test/socket"   # else Locust's --host
    # The settings of `wstool connect`'s flags (-H, -s, --cacert, --proxy, ...):
    connect_options = {"headers": ["X-Load-Test: locust"], "open_timeout_s": 5}
    wait_time = constant(0.1)

    @task(3)
    def echo(self) -> None:
        reply = self.request("hello")  # reported as "text": send, then the next message
        assert reply == "hello", reply

    @task(1)
    def subscribe(self) -> None:
        # A name of its own for this kind of message, a row of its own in the stats.
        message = json.dumps({"op": "subscribe", "topic": "news"})
        self.request(message, name="subscribe")
