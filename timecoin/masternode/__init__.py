"""Masternodes (DESIGN §5): the VRF-weighted leader order of each (height, round) and proposer
eligibility (:mod:`timecoin.masternode.leader`). Pure functions of chain data: nothing here reads
gossip, the clock or the network.
"""
