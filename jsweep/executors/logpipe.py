"""``python -m jsweep.executors.logpipe LOG``: a cell's output (stdin) appended to LOG, line by line,
with its secrets redacted (those the launcher handed the cell in $JSWEEP_SECRETS, and credentials in
URIs). A Slurm job writes its cell's output through it, as the local launcher's pipe does."""

from __future__ import annotations

import signal
import sys


def main(argv: list[str]) -> int:
    from jsweep.redaction import load_env_secrets, redact_text

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the cell's last lines (KILLED...) still reach the log
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    load_env_secrets()
    with open(argv[0], "a", encoding="utf-8", buffering=1) as log:
        for line in sys.stdin:
            try:
                log.write(redact_text(line))
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
