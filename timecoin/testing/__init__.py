"""Test harness shipped in the package (DESIGN §2): failpoints now; TestNode, mininode and
wait_until arrive with the node and P2P issues."""
