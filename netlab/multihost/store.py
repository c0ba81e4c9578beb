"""etcd, the datastore of multi-host labs: the key layout, values, leases, fail-over.

Keys (all under /netlab/):
  hosts/<host>                     an agent's registration {address, mtu, pid}, on its lease
  agents/<host>/plans/<lab>        the host's sub-plan of a lab (what the agent must make)
  agents/<host>/checks/<lab>       a request to run the lab's checks that start on this host
  labs/<lab>/spec                  the controller's record: generation, placement, VNIs
  labs/<lab>/status/<host>         what the agent made of its sub-plan (generation, state)
  labs/<lab>/checks/<host>         the results of the last check request

Values are JSON; plans are zlib-compressed JSON (a 300-node lab's plans fit in one etcd
request). The client is etcd3gw (etcd's JSON gateway): each call goes to one endpoint and
moves on to the next when that one does not answer, so losing a member of a 3-member
cluster costs a retry, not the operation.
"""
from __future__ import annotations

import base64
import json
import time
import zlib
from typing import Any, Callable
from urllib.parse import urlsplit

ROOT = "/netlab/"
REQUEST_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0        # an endpoint that does not answer a SYN is skipped this soon


class StoreError(Exception):
    """etcd could not be reached or refused an operation."""


def host_key(host: str) -> str:
    return f"{ROOT}hosts/{host}"


def plan_key(host: str, lab: str) -> str:
    return f"{ROOT}agents/{host}/plans/{lab}"


def check_request_key(host: str, lab: str) -> str:
    return f"{ROOT}agents/{host}/checks/{lab}"


def agent_prefix(host: str) -> str:
    return f"{ROOT}agents/{host}/"


def spec_key(lab: str) -> str:
    return f"{ROOT}labs/{lab}/spec"


def status_key(lab: str, host: str) -> str:
    return f"{ROOT}labs/{lab}/status/{host}"


def check_result_key(lab: str, host: str) -> str:
    return f"{ROOT}labs/{lab}/checks/{host}"


def pack(value: Any) -> bytes:
    return zlib.compress(json.dumps(value, separators=(",", ":")).encode(), 6)


def unpack(data: bytes) -> Any:
    return json.loads(zlib.decompress(data))


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _range_end(prefix: str) -> str:
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return _b64(bytes(raw))


def parse_endpoints(text: str) -> list[str]:
    """'http://a:2379,http://b:2379' -> URLs; a bare host:port means http."""
    urls = []
    for item in (t.strip() for t in (text or "").split(",")):
        if not item:
            continue
        url = item if "://" in item else f"http://{item}"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StoreError(f"--etcd: {item!r} is not an etcd URL like http://10.0.0.1:2379")
        urls.append(url)
    if not urls:
        raise StoreError("--etcd: no etcd endpoint given (e.g. --etcd http://10.0.0.1:2379)")
    return urls


class Store:
    """One etcd cluster, reached through any of its endpoints."""

    def __init__(self, endpoints: list[str], timeout: float = REQUEST_TIMEOUT):
        import etcd3gw
        self.urls = endpoints
        self._clients = []
        for url in endpoints:
            parts = urlsplit(url)
            self._clients.append(etcd3gw.client(       # etcd3gw brackets an IPv6 host itself
                host=parts.hostname, port=parts.port or 2379, protocol=parts.scheme,
                timeout=(CONNECT_TIMEOUT, timeout), api_path="/v3/"))
        self._current = 0

    # -- transport

    def _call(self, what: Callable, rounds: int = 2):
        """Run `what(client)` on the current endpoint, moving on to the next one when it
        does not answer; after `rounds` passes over all of them, StoreError."""
        from etcd3gw import exceptions as ex
        last: Exception | None = None
        for attempt in range(rounds * len(self._clients)):
            client = self._clients[self._current]
            try:
                return what(client)
            except (ex.ConnectionFailedError, ex.ConnectionTimeoutError, ex.InternalServerError) as err:
                last = err
            except ex.Etcd3Exception as err:     # e.g. 503 during a leader election
                if "leader" not in str(err).lower() and "unavailable" not in str(err).lower():
                    raise StoreError(f"etcd refused: {_short(err)}") from None
                last = err
            self._current = (self._current + 1) % len(self._clients)
            if self._current == 0:
                time.sleep(min(0.2 * (attempt + 1), 1.0))
        raise StoreError(f"etcd at {', '.join(self.urls)} did not answer ({_short(last)})")

    def _post(self, path: str, payload: dict) -> dict:
        return self._call(lambda c: c.post(c.get_url(path), json=payload))

    # -- reads

    def get(self, key: str) -> bytes | None:
        kvs = self._post("/kv/range", {"key": _b64(key)}).get("kvs", [])
        return base64.b64decode(kvs[0].get("value", "")) if kvs else None

    def get_json(self, key: str) -> Any:
        raw = self.get(key)
        return json.loads(raw) if raw else None

    def get_prefix(self, prefix: str) -> tuple[int, dict[str, bytes]]:
        """(revision, {key: value}) of every key under `prefix`, read at one revision."""
        revision, entries = self.entries(prefix)
        return revision, {k: value for k, (value, _) in entries.items()}

    def entries(self, prefix: str, keys_only: bool = False) -> tuple[int, dict[str, tuple[bytes, int]]]:
        """(revision, {key: (value, the revision that last changed it)}) under `prefix`."""
        body = {"key": _b64(prefix), "range_end": _range_end(prefix)}
        if keys_only:
            body["keys_only"] = True
        reply = self._post("/kv/range", body)
        return int(reply["header"]["revision"]), {
            base64.b64decode(kv["key"]).decode(): (base64.b64decode(kv.get("value", "")), int(kv["mod_revision"]))
            for kv in reply.get("kvs", [])}

    def keys(self, prefix: str) -> list[str]:
        return list(self.entries(prefix, keys_only=True)[1])

    def get_with_revision(self, key: str) -> tuple[bytes | None, int]:
        kvs = self._post("/kv/range", {"key": _b64(key)}).get("kvs", [])
        return (base64.b64decode(kvs[0].get("value", "")), int(kvs[0]["mod_revision"])) if kvs else (None, 0)

    def wait_for_change(self, prefix: str, after_revision: int, timeout: float) -> bool:
        """Block until a key under `prefix` changes after `after_revision`, or `timeout`.
        True if something changed (or the watch failed: the caller re-reads anyway).

        One watch request on the gateway, read with a timeout (etcd3gw's own watcher
        opens its stream with none, so an endpoint that vanished would hang it)."""
        import requests
        client = self._clients[self._current]
        body = {"create_request": {"key": _b64(prefix), "range_end": _range_end(prefix),
                                   "start_revision": after_revision + 1}}
        started = time.monotonic()
        try:
            with client.session.post(client.get_url("/watch"), json=body, stream=True,
                                     timeout=(CONNECT_TIMEOUT, timeout)) as reply:
                for line in reply.iter_lines():
                    result = json.loads(line).get("result", {}) if line.strip() else {}
                    if result.get("events") or result.get("canceled") or result.get("created") is False:
                        return True
                    if time.monotonic() - started > timeout:
                        return False
            return True
        except (requests.RequestException, ValueError):
            if time.monotonic() - started >= timeout * 0.9:
                return False                          # the read timed out: nothing changed
            self._current = (self._current + 1) % len(self._clients)
            time.sleep(0.2)
            return True

    # -- writes

    def put(self, key: str, value: bytes | str, lease: int | None = None) -> None:
        payload = {"key": _b64(key), "value": _b64(value)}
        if lease:
            payload["lease"] = lease
        self._post("/kv/put", payload)

    def put_json(self, key: str, value: Any, lease: int | None = None) -> None:
        self.put(key, json.dumps(value, separators=(",", ":")), lease)

    def delete(self, key: str) -> None:
        self._post("/kv/deleterange", {"key": _b64(key)})

    def delete_prefix(self, prefix: str) -> None:
        self._post("/kv/deleterange", {"key": _b64(prefix), "range_end": _range_end(prefix)})

    def transaction(self, puts: dict[str, bytes | str] = {}, deletes: list[str] = (),
                    delete_prefixes: list[str] = ()) -> int:
        """Every put and delete in one etcd transaction: all happen or none. Returns the
        transaction's revision (the mod_revision of every key it put)."""
        ops = [{"request_put": {"key": _b64(k), "value": _b64(v)}} for k, v in puts.items()]
        ops += [{"request_delete_range": {"key": _b64(k)}} for k in deletes]
        ops += [{"request_delete_range": {"key": _b64(p), "range_end": _range_end(p)}}
                for p in delete_prefixes]
        reply = self._post("/kv/txn", {"compare": [], "success": ops, "failure": []})
        return int(reply["header"]["revision"])

    # -- leases

    def grant(self, ttl: int) -> int:
        return int(self._post("/lease/grant", {"TTL": ttl, "ID": 0})["ID"])

    def keepalive(self, lease: int) -> bool:
        """Refresh a lease; False when it has expired (its keys are gone)."""
        reply = self._post("/lease/keepalive", {"ID": lease})
        return int(reply.get("result", {}).get("TTL", 0) or 0) > 0

    def revoke(self, lease: int) -> None:
        self._post("/lease/revoke", {"ID": lease})


def _short(err: Exception | None) -> str:
    text = " ".join((str(err) or type(err).__name__ if err else "no answer").split())
    return text if len(text) < 160 else text[:157] + "..."
