"""A real multi-node Ray cluster on one Linux machine: network namespaces joined by a bridge.

``ray.cluster_utils.Cluster`` runs every node on one address, so it cannot show placement across
hosts. This builds real ones (root, or CAP_NET_ADMIN, and ``ip`` from iproute2)::

    namespace  address          runs
    <tag>-h    198.18.0.1/24    the Ray head (0 CPUs: it hosts the driver, never a worker)
    <tag>-w1   198.18.0.2/24    a Ray worker node (2 CPUs)
    <tag>-w2   198.18.0.3/24    a Ray worker node (2 CPUs)
    <tag>-app  198.18.0.4/24    the target: a tiny HTTP server that counts requests per client
    <tag>-sw   (none)           the bridge ``br0`` and the host ends of the veth pairs

Each node namespace has one veth (``eth0``) whose peer is enslaved to the bridge, which lives in a
namespace of its own: nothing is added to the machine's own network namespace, the addresses
(from the 198.18.0.0/15 benchmarking range) are reachable only between these namespaces, and two
clusters (different tags; the default one carries the pid) never see each other. Ray's token
authentication is on, with a token made for this cluster and handed to its nodes and drivers
through the environment (:meth:`NetnsCluster.env`).

Faults: :meth:`NetnsCluster.kill_node` SIGKILLs every process inside a node's namespace (its
raylet, agents and workers: what ``ip netns pids`` lists, never anything outside);
:meth:`NetnsCluster.partition` sets the node's link down; :meth:`NetnsCluster.restart_node` kills
what is left, sets the link up and starts a fresh raylet there. Teardown (``__exit__``, also after
an error, and on SIGTERM/Ctrl-C of the command) kills the processes of its own namespaces and
deletes them, which deletes their links and the bridge. ``ray stop`` is never used: it stops every
Ray on the machine.

Used by ``tests/coordinator/test_multinode.py``; by hand::

    python scripts/netns_cluster.py up         # prints the address and a driver command, then waits
    python scripts/netns_cluster.py serve HOST PORT   # the target server (what `up` starts)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

REPO_ROOT = Path(__file__).resolve().parents[2]
SUBNET = "198.18.0"  # /24 inside 198.18.0.0/15; private to one cluster's namespaces
RAY_PORT = 6379
APP_PORT = 8080
# The head notices a dead or cut-off raylet after about period x threshold (Ray's defaults are
# 3 s x 5): short here, so that a replacement finds a live node within a test's time.
HEAD_ENV = {"RAY_health_check_period_ms": "500", "RAY_health_check_timeout_ms": "500",
            "RAY_health_check_failure_threshold": "4"}


class ClusterSetupError(RuntimeError):
    """A namespace, link or Ray node could not be made (the message says which command)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """One namespace of the cluster: its role name, namespace name and address."""

    name: str
    netns: str
    address: str


def namespaces_supported() -> str | None:
    """Return why network namespaces cannot be made here, or None when they can."""
    if shutil.which("unshare") is None:
        return "the `unshare` command (util-linux) is not installed"
    probe = f"slgprobe{os.getpid()}"
    try:
        made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    except FileNotFoundError:
        return "the `ip` command (iproute2) is not installed"
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip() or made.returncode} (needs root)"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise ClusterSetupError(f"ip {' '.join(args)}: {done.stderr.strip()}")


class NetnsCluster:
    """A head, ``workers`` worker nodes and a target in namespaces; a context manager.

    Example::

        with NetnsCluster() as cluster:
            cluster.run_driver(["python", "-m", "coordinator.cli", "run", "spec.yaml",
                                "--address", cluster.address])
    """

    def __init__(self, *, workers: int = 2, cpus_per_worker: int = 2, tag: str | None = None,
                 log=lambda message: print(f"netns-cluster: {message}", file=sys.stderr)) -> None:
        self.tag = tag or f"slg{os.getpid()}"
        self._log = log
        self._cpus = cpus_per_worker
        self.head = Node(name="head", netns=f"{self.tag}-h", address=f"{SUBNET}.1")
        self.workers = tuple(Node(name=f"w{i}", netns=f"{self.tag}-w{i}",
                                  address=f"{SUBNET}.{i + 1}") for i in range(1, workers + 1))
        self.app = Node(name="app", netns=f"{self.tag}-app", address=f"{SUBNET}.{workers + 2}")
        self._switch = f"{self.tag}-sw"
        self.address = f"{self.head.address}:{RAY_PORT}"
        self.target_url = f"http://{self.app.address}:{APP_PORT}"
        self.token = secrets.token_hex(24)
        self._tmp = Path(tempfile.mkdtemp(prefix=f"{self.tag}-"))
        self._made: list[str] = []

    @property
    def nodes(self) -> tuple[Node, ...]:
        """Every namespace with an address: head, workers, target."""
        return (self.head, *self.workers, self.app)

    def hostname(self, node: Node) -> str:
        """Return the host name processes in ``node``'s namespace see."""
        return f"{self.tag}-{node.name}"

    # --- set-up -------------------------------------------------------------------------

    def __enter__(self) -> NetnsCluster:
        try:
            self.create_network()
            self.start_target()
            self.start_head()
            for node in self.workers:
                self.start_worker(node)
            self.wait_for_nodes(1 + len(self.workers))
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.teardown()

    def create_network(self) -> None:
        """Make the namespaces, the bridge and one veth pair per node, addresses up."""
        for netns in (self._switch, *(n.netns for n in self.nodes)):
            _ip("netns", "add", netns)
            self._made.append(netns)
            _ip("-n", netns, "link", "set", "lo", "up")
        _ip("-n", self._switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self._switch, "link", "set", "br0", "up")
        for node in self.nodes:
            port = f"p-{node.name}"
            _ip("-n", self._switch, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                "netns", node.netns)
            _ip("-n", self._switch, "link", "set", port, "master", "br0", "up")
            _ip("-n", node.netns, "addr", "add", f"{node.address}/24", "dev", "eth0")
            _ip("-n", node.netns, "link", "set", "eth0", "up")
        self._log(f"namespaces {', '.join(self._made)} joined by {self._switch}/br0")

    def env(self, **extra: str) -> dict[str, str]:
        """Return the environment of this cluster's Ray processes and drivers: this checkout on
        the path, token authentication with this cluster's token, no other cluster's address."""
        drop = ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
        env = {k: v for k, v in os.environ.items() if k not in drop}
        path = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
        return {**env, "PYTHONPATH": path, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token,
                "RAY_USAGE_STATS_ENABLED": "0", **extra}

    def token_file(self) -> Path:
        """Write the cluster's token to a file only its owner reads (for drivers by hand)."""
        path = self._tmp / "token"
        path.touch(mode=0o600)
        path.write_text(self.token)
        return path

    def popen(self, node: Node, argv: Sequence[str], *, env: dict[str, str] | None = None,
              **kwargs) -> subprocess.Popen:
        """Start ``argv`` inside ``node``'s namespace, with the node's own host name (a UTS
        namespace, so that workers report where they run) and in a session of its own."""
        named = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', self.hostname(node)]
        return subprocess.Popen(["ip", "netns", "exec", node.netns, *named, *argv],
                                env=env or self.env(), cwd=REPO_ROOT, start_new_session=True,
                                **kwargs)

    def run_driver(self, argv: Sequence[str], *, timeout_s: float,
                   env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a driver (e.g. ``slogate run --address``) in the head's namespace to its end."""
        return subprocess.run(["ip", "netns", "exec", self.head.netns, *argv], cwd=REPO_ROOT,
                              env=env or self.env(), capture_output=True, text=True,
                              timeout=timeout_s)

    def _ray(self, node: Node, *args: str, env: dict[str, str] | None = None) -> None:
        ray = Path(sys.executable).with_name("ray")
        with open(self._tmp / f"{node.name}.log", "ab") as log:
            self.popen(node, [str(ray), "start", "--block", f"--node-ip-address={node.address}",
                              f"--temp-dir={self._tmp / node.name}", "--disable-usage-stats", *args],
                       env=env, stdout=log, stderr=subprocess.STDOUT)

    def start_head(self) -> None:
        """Start the Ray head (no CPUs for workers, no dashboard) in its namespace."""
        self._ray(self.head, "--head", f"--port={RAY_PORT}", "--num-cpus=0",
                  "--include-dashboard=false", env=self.env(**HEAD_ENV))

    def start_worker(self, node: Node) -> None:
        """Start a Ray worker node in ``node``'s namespace, joining the head."""
        self._ray(node, f"--address={self.address}", f"--num-cpus={self._cpus}")

    def start_target(self) -> None:
        """Start the target server in its namespace and wait until it answers."""
        with open(self._tmp / "app.log", "ab") as log:
            self.popen(self.app, [sys.executable, str(Path(__file__).resolve()), "serve",
                                  self.app.address, str(APP_PORT)], stdout=log,
                       stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.peers() is not None:
                return
            time.sleep(0.2)
        raise ClusterSetupError(f"the target server did not answer within 30 s "
                                f"(log: {self._tmp / 'app.log'})")

    def peers(self) -> dict[str, int] | None:
        """Return how many requests the target has answered per client address (None when it
        does not answer); asked from the head's namespace."""
        code = ("import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
                f"'{self.target_url}/peers', timeout=2).read().decode())")
        done = subprocess.run(["ip", "netns", "exec", self.head.netns, sys.executable, "-c", code],
                              capture_output=True, text=True, timeout=20)
        return json.loads(done.stdout) if done.returncode == 0 else None

    def alive_nodes(self) -> dict[str, str]:
        """Return ``{node address: node id}`` of the nodes the head counts as alive."""
        code = (f"import json, logging, ray; ray.init(address='{self.address}', logging_level=logging.ERROR);"
                "print(json.dumps({n['NodeManagerAddress']: n['NodeID'] for n in ray.nodes() "
                "if n['Alive']}))")
        try:
            done = self.run_driver([sys.executable, "-c", code], timeout_s=60)
        except subprocess.TimeoutExpired:
            return {}
        lines = done.stdout.strip().splitlines()
        return json.loads(lines[-1]) if done.returncode == 0 and lines else {}

    def wait_for_nodes(self, count: int, timeout_s: float = 120) -> dict[str, str]:
        """Wait until the head counts ``count`` live nodes; return them (address: node id)."""
        deadline = time.monotonic() + timeout_s
        alive: dict[str, str] = {}
        while time.monotonic() < deadline:
            alive = self.alive_nodes()
            if len(alive) >= count:
                self._log(f"{len(alive)} live Ray nodes: {', '.join(sorted(alive))}")
                return alive
            time.sleep(1)
        raise ClusterSetupError(f"{len(alive)} of {count} Ray nodes up after {timeout_s:.0f} s "
                                f"(logs under {self._tmp})")

    # --- faults ------------------------------------------------------------------------------

    def pids(self, node: Node) -> list[int]:
        """Return the processes inside ``node``'s namespace."""
        done = subprocess.run(["ip", "netns", "pids", node.netns], capture_output=True, text=True)
        return [int(p) for p in done.stdout.split()]

    def kill_node(self, node: Node, timeout_s: float = 10) -> int:
        """SIGKILL every process inside ``node``'s namespace (a node that dies); return how many."""
        pids = self._kill(node.netns)
        deadline = time.monotonic() + timeout_s
        while self.pids(node) and time.monotonic() < deadline:
            time.sleep(0.1)
        self._log(f"killed {len(pids)} processes in {node.netns}")
        return len(pids)

    def partition(self, node: Node) -> None:
        """Cut ``node`` off the network: its link goes down, its processes keep running."""
        _ip("-n", node.netns, "link", "set", "eth0", "down")
        self._log(f"{node.netns}: link down")

    def restart_node(self, node: Node) -> None:
        """Kill what runs in a worker node's namespace, set its link up, start a new raylet."""
        self.kill_node(node)
        _ip("-n", node.netns, "link", "set", "eth0", "up")
        self.start_worker(node)

    # --- teardown ---------------------------------------------------------------------------

    def _kill(self, netns: str) -> list[int]:
        done = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
        pids = [int(p) for p in done.stdout.split()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids

    def teardown(self) -> None:
        """Kill the processes inside this cluster's namespaces and delete the namespaces (their
        links and the bridge go with them). Safe to call twice."""
        for netns in reversed(self._made):
            for _ in range(50):  # a process may fork while it is being killed: repeat
                if not self._kill(netns):
                    break
                time.sleep(0.1)
        for netns in reversed(self._made):
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        if self._made:
            self._log(f"deleted {', '.join(self._made)}")
        self._made = []
        shutil.rmtree(self._tmp, ignore_errors=True)


# --- the target server -----------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """``GET /hello``: 200 and counts the client's address; ``GET /peers``: the counts as JSON."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the load generator expects
    seen: ClassVar[Counter[str]] = Counter()  # shared by the handler instances, one per request
    lock = threading.Lock()

    def do_GET(self) -> None:
        if self.path == "/peers":
            with self.lock:
                body = json.dumps(dict(self.seen)).encode()
        else:
            with self.lock:
                self.seen[self.client_address[0]] += 1
            body = b"hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def serve(host: str, port: int) -> None:
    """Serve the target on ``host:port`` until SIGTERM."""
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"READY http://{host}:{port}", flush=True)
    server.serve_forever()


def _interrupt(*_args: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """``up``: build a cluster and wait for Ctrl-C; ``serve HOST PORT``: the target server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="build the cluster, print how to use it, wait for Ctrl-C")
    serving = sub.add_parser("serve", help="run the target server")
    serving.add_argument("host")
    serving.add_argument("port", type=int)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.host, args.port)
        return 0
    why = namespaces_supported()
    if why:
        print(f"netns-cluster: error: {why}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM tears down as Ctrl-C does
    with NetnsCluster() as cluster:
        token = cluster.token_file()
        print(f"Ray at {cluster.address}, target {cluster.target_url}. A driver runs in the "
              f"head's namespace with the cluster's token:\n  ip netns exec {cluster.head.netns}"
              f" env RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={token} slogate run SPEC "
              f"--address {cluster.address}\nCtrl-C tears it all down.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
