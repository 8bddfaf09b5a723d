"""Test and benchmark tools that play parts of the system (a load source, a drain-only
gateway process); not shipped in the package."""
