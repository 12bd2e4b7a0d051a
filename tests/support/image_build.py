"""The Falco image's build stage without Docker: its build context computed from the
Dockerfile's own ignore file with Docker's pattern rules (docker-py), and the stage's COPY
instructions laid out from that context, so `make dist` runs on exactly what the image's
build would see. No registry is reachable here, so the image itself is built only by the
user CI workflow (.github/workflows/deploy-artifacts.yml).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from docker.utils.build import exclude_paths

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "falco" / "Dockerfile"
IGNORE = DOCKERFILE.with_name(DOCKERFILE.name + ".dockerignore")


@dataclass(frozen=True)
class Instruction:
    stage: str
    keyword: str
    args: list[str]


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, each with its stage name."""
    joined = text.replace("\\\n", " ")
    found, stage = [], ""
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, *args = shlex.split(line, comments=False, posix=True)
        keyword = keyword.upper()
        if keyword == "FROM":
            stage = args[2] if len(args) > 2 and args[1].upper() == "AS" else args[0]
        found.append(Instruction(stage, keyword, args))
    return found


def ignore_patterns() -> list[str]:
    lines = IGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode()
    return [path for path in listed.split("\0") if path and (ROOT / path).is_file()]


def context(checkout: Path) -> set[str]:
    """Files of `checkout` that Docker sends as the build context."""
    dockerfile = str(DOCKERFILE.relative_to(ROOT))
    paths = exclude_paths(str(checkout), ignore_patterns(), dockerfile)
    return {p for p in paths if (checkout / p).is_file()}


def clean_checkout(into: Path) -> Path:
    """The tracked files, as a fresh clone has them (no venv, no build output)."""
    for path in tracked_files():
        (into / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, into / path)
    return into


def copy_sources(stage: str) -> list[tuple[list[str], str]]:
    """(sources, destination) of the stage's COPY instructions from the build context."""
    copies = []
    for ins in instructions(DOCKERFILE.read_text()):
        if ins.stage == stage and ins.keyword == "COPY" and not any(
                a.startswith("--from") for a in ins.args):
            *sources, destination = [a for a in ins.args if not a.startswith("--")]
            copies.append((sources, destination))
    return copies


def lay_out_stage(checkout: Path, stage: str, into: Path) -> Path:
    """What the stage's COPY instructions put in its WORKDIR (`into`), from the context."""
    sent = context(checkout)
    for sources, destination in copy_sources(stage):
        for source in sources:
            name = source.rstrip("/")
            files = [f for f in sent if f == name or f.startswith(name + "/")]
            if not files:
                raise FileNotFoundError(f"COPY {source}: not in the build context")
            for f in files:
                relative = Path(f).relative_to(name) if f != name else Path(Path(f).name)
                target = into / destination / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(checkout / f, target)
    return into
