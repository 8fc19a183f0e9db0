"""Pure-Python reference twins of the native hot paths: test oracles and benchmark baselines.

Nothing on a node's hot path may call into this package.
"""
