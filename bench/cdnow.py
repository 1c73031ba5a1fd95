#!/usr/bin/env python3
"""Convert the public CDNOW purchase log into Micro's batch files (SPEC §2).

Why this exists: Micro's models are otherwise only ever measured on worlds
that Micro itself generates, which cannot show whether the features carry
signal in real purchase data. CDNOW_master.txt holds the real purchases of
the 23,570 customers who first bought at CDNOW in the first quarter of 1997,
followed until the end of June 1998 (columns customer_id, date YYYYMMDD,
number_of_cds, dollar_value). It is shipped inside the PyPI package
``lifetimes`` (``lifetimes/datasets/CDNOW_master.txt`` in the wheel).

Outputs, in ``--out``:

* ``interactions.csv`` — one ``PURCHACE`` per row dated before ``--cutoff``
  (the 39-week calibration period of the CLV literature by default);
* ``catalog.csv`` — the single target ``cdnow-order`` (category ``music``,
  price unknown);
* ``labels.csv`` — ``spending_class`` 1..5: the quintile of each customer's
  spend after the cutoff among the customers who buy again
  (``--label later``), or of the total spend over the whole file among all
  customers (``--label total``).

Standard library only, so it runs before any virtual environment exists.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

INTERACTION_HEADER = [
    "id", "type", "timestamp", "origin_id", "origin_type", "actor_id",
    "actor_type", "target_id", "target_type", "value", "currency", "quantity",
]
CATALOG_HEADER = ["target_id", "target_type", "category", "price", "subcategory", "brand", "topics"]
TARGET_ID = "cdnow-order"
CLASSES = 5


@dataclass(frozen=True)
class Purchase:
    """One row of CDNOW_master.txt."""

    line: int  # 1-based physical line number in the file (the header is line 1)
    customer: str  # kept as text: the leading zeros are part of the id
    date: dt.date
    cds: int
    dollars_text: str  # written out exactly as the file has it
    dollars: float


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", type=Path, required=True, help="CDNOW_master.txt")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--cutoff", type=dt.date.fromisoformat, default=dt.date(1997, 10, 1),
                   help="first day after the calibration period (default 1997-10-01)")
    p.add_argument("--label", choices=["later", "total"], default="later",
                   help="later: quintile of spend from the cutoff on, among customers who buy "
                        "then; total: quintile of spend over the whole file, all customers")
    return p.parse_args(argv)


def read_purchases(path: Path) -> list[Purchase]:
    """Reads the whitespace-separated file; a header line, if any, is skipped."""
    rows: list[Purchase] = []
    with path.open(encoding="ascii") as f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if not fields[0].isdigit():
                if number == 1:
                    continue  # "customer_id date number_of_cds dollar_value"
                raise ValueError(f"{path}:{number}: unexpected line {line!r}")
            if len(fields) != 4:
                raise ValueError(f"{path}:{number}: expected 4 columns, got {len(fields)}")
            customer, date, cds, dollars = fields
            rows.append(Purchase(
                line=number,
                customer=customer,
                date=dt.datetime.strptime(date, "%Y%m%d").date(),
                cds=int(cds),
                dollars_text=dollars,
                dollars=float(dollars),
            ))
    return rows


def timestamp(day: dt.date) -> str:
    return f"{day.isoformat()}T12:00:00Z"


def write_interactions(path: Path, purchases: list[Purchase], cutoff: dt.date) -> int:
    written = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(INTERACTION_HEADER)
        for p in purchases:
            if p.date >= cutoff:
                continue
            w.writerow([
                f"cdnow-{p.line}", "PURCHACE", timestamp(p.date), "cdnow", "shop",
                p.customer, "user", TARGET_ID, "order", p.dollars_text, "USD", p.cds,
            ])
            written += 1
    return written


def write_catalog(path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(CATALOG_HEADER)
        w.writerow([TARGET_ID, "order", "music", "", "", "", ""])


def spend_by_customer(purchases: list[Purchase], since: dt.date | None) -> dict[str, float]:
    """Summed dollar value per customer of the rows dated on or after `since`
    (all rows when None). Customers without such rows are absent."""
    spend: dict[str, float] = defaultdict(float)
    for p in purchases:
        if since is None or p.date >= since:
            spend[p.customer] += p.dollars
    # whole cents, so that equal spends tie exactly whatever the summing order
    return {c: round(v, 2) for c, v in spend.items()}


def quintiles(spend: dict[str, float]) -> dict[str, int]:
    """Class = rank * 5 // n + 1, ranking by spend, ties broken by customer id."""
    ranked = sorted(spend, key=lambda c: (spend[c], c))
    n = len(ranked)
    return {c: rank * CLASSES // n + 1 for rank, c in enumerate(ranked)}


def write_labels(path: Path, classes: dict[str, int]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["user_id", "spending_class"])
        for customer in sorted(classes):
            w.writerow([customer, classes[customer]])


def cut_points(spend: dict[str, float], classes: dict[str, int]) -> list[tuple[int, int, float, float]]:
    """(class, users, min spend, max spend) per class."""
    out = []
    for k in range(1, CLASSES + 1):
        values = [spend[c] for c, cls in classes.items() if cls == k]
        if values:
            out.append((k, len(values), min(values), max(values)))
    return out


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    purchases = read_purchases(args.input)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = write_interactions(args.out / "interactions.csv", purchases, args.cutoff)
    write_catalog(args.out / "catalog.csv")
    spend = spend_by_customer(purchases, args.cutoff if args.label == "later" else None)
    classes = quintiles(spend)
    write_labels(args.out / "labels.csv", classes)

    customers = {p.customer for p in purchases}
    active = {p.customer for p in purchases if p.date < args.cutoff}
    zero = sum(1 for p in purchases if p.dollars == 0)
    first, last = min(p.date for p in purchases), max(p.date for p in purchases)
    print(f"read {len(purchases)} rows of {len(customers)} customers, {first} .. {last} "
          f"({zero} rows with dollar_value 0)")
    print(f"interactions.csv: {rows} purchases before {args.cutoff} by {len(active)} customers")
    scope = (f"spend from {args.cutoff} to {last}, customers who buy then"
             if args.label == "later" else f"total spend {first} .. {last}, all customers")
    print(f"labels.csv: {len(classes)} users labelled ({scope})")
    for k, n, lo, hi in cut_points(spend, classes):
        print(f"  class {k}: {n:6d} users, ${lo:10.2f} .. ${hi:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
