"""README's code blocks, for CI: the first set-up command, and the output it must print."""
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(lang: str) -> list[str]:
    """The fenced blocks of README whose info string is ``lang`` ("" for plain ones), in order."""
    out, current, info = [], None, None
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            if current is None:
                current, info = [], line[3:].strip()
            else:
                if info == lang:
                    out.append("\n".join(current) + "\n")
                current = None
        elif current is not None:
            current.append(line)
    return out


def first_command() -> str:
    line = next(l for l in blocks("console")[0].splitlines() if l.strip() and not l.startswith("#"))
    return line.lstrip("$ ").strip()


def expected_output() -> str:
    return blocks("")[0]


if __name__ == "__main__":
    if sys.argv[1] == "first-command":
        print(first_command())
    elif sys.argv[1] == "check-output":
        got = Path(sys.argv[2]).read_text()
        want = expected_output()
        if got.strip() != want.strip():
            sys.exit(f"README's table differs from what the first command printed:\n--- README\n{want}\n--- printed\n{got}")
        print("README's first command prints README's table")
