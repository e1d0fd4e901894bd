"""``plm data``: list, fetch, build and verify the named real sources and derived datasets."""

from __future__ import annotations

import argparse
import json

from plmkit.datasets import (
    DATASETS, SOURCES, build_dataset, dataset_dir, fetch, get_dataset, is_built, is_fetched,
    source_dir,
)
from plmkit.datasets.sources import get_source
from plmkit.errors import PlmError


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="fetch real sources and build derived datasets",
                                   description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")

    listing = sub.add_parser("list", help="sources and derived datasets, fetched/built or not")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(func=run_list)

    fetching = sub.add_parser("fetch", help="download, verify and unpack sources")
    fetching.add_argument("names", nargs="+", metavar="NAME", help=f"one of: {', '.join(SOURCES)}, or all")
    fetching.add_argument("--force", action="store_true",
                          help="download and unpack again even if a fetched copy is there")
    fetching.set_defaults(func=run_fetch)

    building = sub.add_parser("build", help="build derived datasets (fetching their sources)")
    building.add_argument("names", nargs="+", metavar="NAME", help=f"one of: {', '.join(DATASETS)}, or all")
    building.add_argument("--force", action="store_true", help="rebuild even if a current build exists")
    building.set_defaults(func=run_build)

    verifying = sub.add_parser("verify", help="re-hash every cached file against its recorded sha256")
    verifying.add_argument("names", nargs="*", metavar="NAME",
                           help="sources or datasets to check (default: everything fetched or built)")
    verifying.set_defaults(func=run_verify)

    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _names(names: list[str], known) -> list[str]:
    return list(known) if names == ["all"] else names


def run_list(args: argparse.Namespace) -> int:
    sources = [{"name": s.name, "kind": s.kind, "package": s.package, "version": s.version,
                "spec": s.spec, "fetched": is_fetched(s.name), "path": str(source_dir(s.name)), "license": s.license,
                "description": s.description} for s in SOURCES.values()]
    datasets = [{"name": d.name, "sources": list(d.sources), "built": is_built(d.name),
                 "path": str(dataset_dir(d.name)), "description": d.description}
                for d in DATASETS.values()]
    if args.json:
        print(json.dumps({"sources": sources, "datasets": datasets}, indent=2))
        return 0
    print("sources:")
    for s in sources:
        mark = "fetched" if s["fetched"] else "-"
        print(f"  {s['name']:<18} {mark:<8} {s['spec']}  {s['description']}")
    print("datasets:")
    for d in datasets:
        mark = "built" if d["built"] else "-"
        print(f"  {d['name']:<18} {mark:<8} from {', '.join(d['sources'])}: {d['description']}")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    names = _names(args.names, SOURCES)
    for name in names:
        get_source(name)  # an unknown name fails before any download
    for name in names:
        print(f"{name}\t{fetch(name, force=args.force)}")
    return 0


def run_build(args: argparse.Namespace) -> int:
    names = _names(args.names, DATASETS)
    for name in names:
        get_dataset(name)
    for name in names:
        manifest = build_dataset(name, force=args.force)
        print(json.dumps({"name": name, "files": {k: v["path"] for k, v in manifest["files"].items()},
                          "stats": manifest["stats"]}, ensure_ascii=False))
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """One line per source/dataset on stdout; any change fails the command with its fix."""
    from plmkit.datasets import cached_names, verify_cached

    failed: list[PlmError] = []
    for name in args.names or cached_names():
        try:
            summary = verify_cached(name)
        except PlmError as error:
            if error.field == "name":
                raise
            failed.append(error)
            print(f"{name}\tCHANGED\t{error}")
            continue
        print(f"{name}\t{'ok' if summary else 'absent'}\t{summary or 'not fetched or built'}")
    if failed:
        more = f" (and {len(failed) - 1} more, listed above)" if len(failed) > 1 else ""
        raise PlmError(f"{failed[0]}{more}")
    return 0
