"""``python -m gateway --config FILE``: run the gateway (what the systemd unit starts).

Exit status: 0 after a clean stop (SIGTERM), 2 for an invalid configuration, 1 when the
gateway failed (systemd's ``Restart=on-failure`` starts it again).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Final

from gateway.config import load_settings
from gateway.errors import ConfigError, GatewayError
from gateway.logging import configure_logging
from gateway.runtime import serve

EXIT_BAD_CONFIG: Final = 2
EXIT_FAILURE: Final = 1


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the gateway, return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="TOML or YAML configuration")
    arguments = parser.parse_args(argv)
    try:
        configure_logging(load_settings(arguments.config).log_level)
        asyncio.run(serve(arguments.config))
    except ConfigError as exc:
        print(f"invalid configuration:\n{exc}", file=sys.stderr)  # noqa: T201 - CLI output
        return EXIT_BAD_CONFIG
    except GatewayError as exc:
        print(f"gateway failed: {exc}", file=sys.stderr)  # noqa: T201 - CLI output
        return EXIT_FAILURE
    return 0


if __name__ == "__main__":
    sys.exit(main())
