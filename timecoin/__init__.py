"""TIME Coin: a masternode UTXO payment chain with sub-second finality (see docs/ and DESIGN)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("timecoin")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
