"""The peer-to-peer network (DESIGN §8): framing, messages, handshake, connections, gossip,
block sync and the service that wires them to the node (:class:`P2PService`)."""

from timecoin.p2p.config import P2PConfig
from timecoin.p2p.gossip import GossipKind
from timecoin.p2p.service import NodeHooks, P2PService

__all__ = ["GossipKind", "NodeHooks", "P2PConfig", "P2PService"]
