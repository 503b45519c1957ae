"""Which of a pyproject's requirements this interpreter lacks (or has at a version outside the range),
one per line, torch left out: scripts/setup-venv.sh installs only these on a GPU image, so the
image's own packages (its CUDA torch above all) stay as they are.

    python3 scripts/missing-deps.py pyproject.toml          # [project] dependencies
    python3 scripts/missing-deps.py pyproject.toml dev      # [project.optional-dependencies] dev
"""
import sys
import tomllib
from importlib import metadata

try:
    from packaging.requirements import Requirement
except ImportError:                       # pip's own copy, where packaging is not installed
    from pip._vendor.packaging.requirements import Requirement

KEEP = {"torch"}                          # never installed here: the image's build is the point


def missing(requirements: list[str]) -> list[str]:
    out = []
    for line in requirements:
        req = Requirement(line)
        if req.name in KEEP:
            continue
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            out.append(line)
            continue
        if not req.specifier.contains(have, prereleases=True):
            out.append(line)
    return out


if __name__ == "__main__":
    project = tomllib.load(open(sys.argv[1], "rb"))["project"]
    wanted = project["optional-dependencies"][sys.argv[2]] if len(sys.argv) > 2 else project["dependencies"]
    print("\n".join(missing(wanted)))
