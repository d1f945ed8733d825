"""Fuzz every operation of the service's OpenAPI document with schemathesis; count 5xx responses.

Starts `ferkit serve` on a free 127.0.0.1 port, runs `schemathesis run` against its
/openapi.json (all checks, --max-examples per operation; uploads are real images and videos of
each documented media type, from tests/api_media.py), then
counts the 5xx status lines in the server's own access log, independent of what schemathesis
reports. Exit 0 only when schemathesis finds nothing and the log has no 5xx.

    python benchmarks/fuzz_api.py --max-examples 200
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections import Counter

from load_test import ROOT, ServerProcess

TESTS = ROOT / "tests"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-examples", type=int, default=100, help="test cases per API operation")
    parser.add_argument("--checks", default="all", help="schemathesis checks (default: all)")
    parser.add_argument("--exclude-checks", default="", help="schemathesis checks to leave out (default: none)")
    args = parser.parse_args()

    server = ServerProcess([])
    start = time.monotonic()
    try:
        cmd = [sys.executable, "-m", "schemathesis.cli", "run", f"http://127.0.0.1:{server.port}/openapi.json",
               "--checks", args.checks, *(["--exclude-checks", args.exclude_checks] if args.exclude_checks else []),
               "--max-examples", str(args.max_examples), "--request-timeout", "60",
               "--suppress-health-check", "all", "--no-color"]
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "api_media",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
        result = subprocess.run(cmd, capture_output=True, text=True, env=env)
        log = server.log_text()
    finally:
        server.stop()
    statuses = Counter(re.findall(r'HTTP/1\.[01]" (\d{3})', log))
    server_errors = sum(n for code, n in statuses.items() if code.startswith("5"))
    print(result.stdout[-6000:])
    print(f"schemathesis exit code {result.returncode}; {sum(statuses.values())} requests in "
          f"{time.monotonic() - start:.0f} s; status codes {dict(sorted(statuses.items()))}; 5xx: {server_errors}")
    return 0 if server_errors == 0 and result.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
