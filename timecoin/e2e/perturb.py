"""Perturbations of real node processes on one host (docs/e2e.md, "Faults"):

* **kill -9 / restart** and **SIGSTOP / SIGCONT** are signals to a node's process
  (:class:`timecoin.e2e.network.E2ENetwork` keeps the processes);
* **partition / heal** (and a one-node **outage**) cut P2P traffic between groups of nodes with
  nftables: every node runs in its own cgroup v2 (``<cgroup2 root>/timecoin-e2e-<run>/node<i>``,
  :class:`Cgroups`), and one ``inet`` table of this run (:class:`Partitioner`) drops, for every
  node u on one side and v on the other, what u's sockets send to v's P2P port (hook ``output``,
  ``socket cgroupv2`` is the sender) and what u's sockets receive from v's P2P port (hook
  ``input``, where the socket looked up is the receiver's). Both directions of every connection
  across the cut are covered whoever dialed, and nothing else on the host is touched (RPC and
  other programs' traffic pass). :func:`partition_support` says whether this host can do it;
* **delay** sends one node's P2P connections through the runner's delay relay
  (:class:`timecoin.e2e.relay.DelayRelay`): a ``nat`` chain of the same table redirects every
  new connection between that node's cgroup and the others' P2P ports to the relay's port, and
  ``reject with tcp reset`` rules end the direct connections still open, so both ends redial
  through the relay within a second (the first blip of the fault).

The table and the cgroups are removed by :meth:`Partitioner.remove` and :meth:`Cgroups.remove`,
which the runner calls on every exit path (failure and Ctrl-C included).

Not built: the network-namespace fallback (``ip netns`` + veth) for hosts without nftables'
cgroup v2 matching (the kernels this project's CI runs on have no veth to build and test it
on); and kernel-level delay (tc netem), which these kernels lack: the relay delays in user space
instead. A schedule asking for a partition, outage or delay where it cannot be done raises
:class:`PerturbationUnavailable` before anything starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = [
    "CGROUP_PREFIX",
    "NFT_TABLE_PREFIX",
    "Cgroups",
    "PerturbationUnavailable",
    "Partitioner",
    "cgroup2_root",
    "partition_support",
]

CGROUP_PREFIX = "timecoin-e2e-"
"""Name prefix of a run's cgroup, directly under the cgroup v2 root."""
NFT_TABLE_PREFIX = "timecoin_e2e_"
"""Name prefix of a run's nftables table (family ``inet``)."""
NFT_CGROUP_BASE = Path("/sys/fs/cgroup")
"""nft resolves a ``socket cgroupv2`` path relative to this directory (nftables' own rule), so
the cgroup v2 hierarchy must be mounted at or below it."""
NODE_LEVEL = 2
"""Depth of a node's cgroup below the cgroup v2 root (run, then node): the ``level`` nft
compares."""
DELAY_CHAINS = ("delay_nat", "delay_output")
"""The table's chains a delay fault fills (:meth:`Partitioner.delay_rules`)."""
NFT_TIMEOUT = 10.0
"""Seconds one ``nft`` call may take."""


class PerturbationUnavailable(RuntimeError):
    """This host cannot perform a perturbation the schedule asks for; the message says why."""


def cgroup2_root(mounts: Path = Path("/proc/self/mounts")) -> Path | None:
    """Where the cgroup v2 hierarchy is mounted (``/sys/fs/cgroup`` on a pure v2 host,
    ``/sys/fs/cgroup/unified`` on a hybrid one), None if it is not."""
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


def _nft(script: str) -> None:
    """Runs an nft script atomically; :class:`PerturbationUnavailable` with nft's own error."""
    try:
        done = subprocess.run(
            ["nft", "-f", "-"], input=script, capture_output=True, text=True, timeout=NFT_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise PerturbationUnavailable(f"nft could not run: {e}") from None
    if done.returncode != 0:
        raise PerturbationUnavailable(f"nft refused the rules: {done.stderr.strip()}")


class Cgroups:
    """One cgroup v2 per node of a run, under ``<root>/timecoin-e2e-<run>/``."""

    def __init__(self, run: str, nodes: int, root: Path | None = None) -> None:
        found = root if root is not None else cgroup2_root()
        if found is None:
            raise PerturbationUnavailable("no cgroup v2 hierarchy is mounted (/proc/self/mounts)")
        self.root = found
        self.run_dir = found / f"{CGROUP_PREFIX}{run}"
        self.nodes = nodes

    def node_dir(self, index: int) -> Path:
        return self.run_dir / f"node{index}"

    def procs_file(self, index: int) -> Path:
        """Writing a pid (``0``: the writer) here moves that process into node ``index``'s group."""
        return self.node_dir(index) / "cgroup.procs"

    def nft_path(self, index: int) -> str:
        """Node ``index``'s cgroup as nft names it (relative to :data:`NFT_CGROUP_BASE`).
        :class:`PerturbationUnavailable` if the hierarchy is mounted outside it."""
        try:
            return str(self.node_dir(index).relative_to(NFT_CGROUP_BASE))
        except ValueError:
            raise PerturbationUnavailable(
                f"the cgroup v2 hierarchy is mounted at {self.root}, outside {NFT_CGROUP_BASE} where "
                "nft looks up cgroup paths"
            ) from None

    def create(self) -> None:
        """Makes the run's groups; :class:`PerturbationUnavailable` if the hierarchy is not
        writable (not root, or a read-only mount)."""
        try:
            for i in range(self.nodes):
                self.node_dir(i).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise PerturbationUnavailable(f"cannot create cgroups under {self.root}: {e}") from None

    def remove(self) -> list[str]:
        """Removes the groups (each must be empty: its process exited); the problems met, as
        lines (empty: all removed)."""
        problems = []
        for i in range(self.nodes):
            path = self.node_dir(i)
            try:
                if path.exists():
                    path.rmdir()
            except OSError as e:
                problems.append(f"cannot remove {path}: {e}")
        try:
            if self.run_dir.exists():
                self.run_dir.rmdir()
        except OSError as e:
            problems.append(f"cannot remove {self.run_dir}: {e}")
        return problems


class Partitioner:
    """The run's nftables table: :meth:`cut` installs a partition, :meth:`heal` lifts it."""

    def __init__(self, run: str, cgroups: Cgroups, p2p_ports: list[int]) -> None:
        self.table = f"{NFT_TABLE_PREFIX}{run}".replace("-", "_")
        self.cgroups = cgroups
        self.ports = list(p2p_ports)
        self.installed = False

    def install(self) -> None:
        """Creates the (empty) table with an output and an input chain;
        :class:`PerturbationUnavailable` if nft is missing or refuses."""
        if shutil.which("nft") is None:
            raise PerturbationUnavailable("nft is not installed (apt-get install nftables)")
        _nft(
            f"table inet {self.table} {{\n"
            "  chain output { type filter hook output priority 0; policy accept; }\n"
            "  chain input { type filter hook input priority 0; policy accept; }\n"
            "  chain delay_nat { type nat hook output priority -100; policy accept; }\n"
            "  chain delay_output { type filter hook output priority 0; policy accept; }\n"
            "}\n"
        )
        self.installed = True

    def _matches(self, groups: tuple[tuple[int, ...], ...]) -> list[tuple[str, str]]:
        """For every node u of one group: (u's socket match, the P2P ports of the other groups)."""
        out = []
        for side in groups:
            others = sorted(self.ports[v] for g in groups if g is not side for v in g)
            if not others:
                continue
            ports = "{ " + ", ".join(map(str, others)) + " }"
            for u in side:
                out.append((f'socket cgroupv2 level {NODE_LEVEL} "{self.cgroups.nft_path(u)}"', ports))
        return out

    def _cross(self, groups: tuple[tuple[int, ...], ...], output: str, input: str, verdict: str) -> list[str]:
        """Rules giving ``verdict`` to every P2P packet between two of ``groups``, both
        directions of every connection (module docstring)."""
        lines = []
        for match, ports in self._matches(groups):
            lines.append(f"add rule inet {self.table} {output} {match} tcp dport {ports} {verdict}")
            lines.append(f"add rule inet {self.table} {input} {match} tcp sport {ports} {verdict}")
        return lines

    def rules(self, groups: tuple[tuple[int, ...], ...]) -> str:
        """The nft script that replaces the chains' rules with a cut between ``groups``."""
        lines = [f"flush chain inet {self.table} output", f"flush chain inet {self.table} input"]
        lines += self._cross(groups, "output", "input", "drop")
        return "\n".join(lines) + "\n"

    def delay_rules(self, node: int, relay_port: int) -> str:
        """The nft script that sends ``node``'s P2P connections through the relay on
        ``relay_port``: new ones, dialed by it or to it, are redirected there (``nat`` output
        hook, before the filter), and the direct ones still open are reset: every packet either
        end sends on one is refused with a TCP reset to its sender (on loopback every packet is
        sent by a local socket, so the ``output`` hook sees both directions; a rule on ``input``
        would eat those resets). Both ends then redial, through the relay."""
        groups = ((node,), tuple(i for i in range(len(self.ports)) if i != node))
        lines = [f"flush chain inet {self.table} {c}" for c in DELAY_CHAINS]
        for match, ports in self._matches(groups):
            lines.append(
                f"add rule inet {self.table} delay_nat {match} tcp dport {ports} redirect to :{relay_port}"
            )
        for match, ports in self._matches(groups):
            lines.append(
                f"add rule inet {self.table} delay_output {match} tcp dport {ports} reject with tcp reset"
            )
        return "\n".join(lines) + "\n"

    def cut(self, groups: tuple[tuple[int, ...], ...]) -> None:
        """No P2P packet crosses between two of ``groups`` (node indices) from now on."""
        if not self.installed:
            self.install()
        _nft(self.rules(groups))

    def heal(self) -> None:
        """Every node can reach every other again."""
        if self.installed:
            _nft(f"flush chain inet {self.table} output\nflush chain inet {self.table} input\n")

    def delay(self, node: int, relay_port: int) -> None:
        """``node``'s P2P traffic goes through the relay on ``relay_port`` from now on
        (:meth:`delay_rules`)."""
        if not self.installed:
            self.install()
        _nft(self.delay_rules(node, relay_port))

    def undelay(self) -> None:
        """New connections go direct again (the relay closes the ones it carries)."""
        if self.installed:
            _nft("".join(f"flush chain inet {self.table} {c}\n" for c in DELAY_CHAINS))

    def remove(self) -> str | None:
        """Deletes the table; the problem met, if any."""
        if not self.installed:
            return None
        try:
            _nft(f"delete table inet {self.table}\n")
        except PerturbationUnavailable as e:
            return str(e)
        self.installed = False
        return None


def partition_support(run: str) -> str | None:
    """None if this host can partition and delay a run's nodes (nft present, cgroup v2 writable
    below :data:`NFT_CGROUP_BASE`, and the kernel accepts a ``socket cgroupv2`` rule on a group of
    this run, in a filter chain and with a ``redirect`` in a nat chain), else the reason. Leaves
    nothing behind."""
    if os.geteuid() != 0:
        return "partitions need root (cgroups and nftables rules)"
    probe = f"{run}-probe"
    try:
        groups = Cgroups(probe, 1)
        groups.create()
    except PerturbationUnavailable as e:
        return str(e)
    partitioner: Partitioner | None = None
    try:
        partitioner = Partitioner(probe, groups, [1])
        partitioner.install()
        _nft(
            f"add rule inet {partitioner.table} output socket cgroupv2 level {NODE_LEVEL} "
            f'"{groups.nft_path(0)}" tcp dport 9 drop\n'
            f"add rule inet {partitioner.table} delay_nat socket cgroupv2 level {NODE_LEVEL} "
            f'"{groups.nft_path(0)}" tcp dport 9 redirect to :10\n'
        )
    except PerturbationUnavailable as e:
        return str(e)
    finally:
        if partitioner is not None:
            partitioner.remove()
        groups.remove()
    return None
