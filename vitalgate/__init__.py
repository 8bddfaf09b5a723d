"""The ``vitalgate`` command line and the stack runner."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vitalgate")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
