"""Print `passed=N failed=N skipped=N` from a pytest JUnit XML report (the last line of scripts/e2e.sh)."""

import sys
import xml.etree.ElementTree as ElementTree


def counts(path: str) -> str:
    try:
        root = ElementTree.parse(path).getroot()  # noqa: S314 (the report pytest wrote in this run)
    except (OSError, ElementTree.ParseError):
        return "passed=0 failed=0 skipped=0"
    suites = [root] if root.tag == "testsuite" else list(root)
    tests, failures, errors, skipped = (
        sum(int(suite.get(key, 0)) for suite in suites) for key in ("tests", "failures", "errors", "skipped")
    )
    failed = failures + errors
    return f"passed={tests - failed - skipped} failed={failed} skipped={skipped}"


if __name__ == "__main__":
    print(counts(sys.argv[1]))
