"""The landing folder as a whole: file names, format per entity, quirks, and finishing touches.

`Landing` hands out one CSV sink per (entity, extract) named
`<system>/<entity>/<entity>_<YYYYMMDDTHHMMSS>.csv`, writes erp/materials and erp/fx_rates as
Parquet, gives some files a UTF-8 BOM or a column order other than the contract's, and when
everything is written plants the malformed rows (defects.py) and returns what was written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dagster_project.generate.defects import PlantedDefect, plant
from dagster_project.generate.difficulty import Difficulty
from dagster_project.generate.streams import Streams
from dagster_project.generate.timeline import Timeline
from dagster_project.generate.world import World
from dagster_project.generate.writer import CsvSink, parquet_table, write_parquet

PARQUET_ENTITIES = ("erp/materials", "erp/fx_rates")
# Decimal places per dec column (2 when not listed): quantities to the gram or minute,
# discounts to a tenth of a percent.
DECIMALS = {"quantity": 3, "delivered_quantity": 3, "discount_pct": 1, "eur_per_unit": 6}
# Candidates for a truncated last line: one full load and one incremental file.
TRUNCATION_CANDIDATES = (
    (("crm/contacts", 0), ("crm/opportunities", 0), ("erp/sales_orders", 0), ("erp/invoices", 0)),
    (("erp/order_lines", 2), ("erp/deliveries", 2), ("crm/cases", 2), ("erp/invoices", 1)),
)


@dataclass
class Written:
    rows: dict[str, int] = field(default_factory=dict)  # file -> data rows (incl. planted ones)
    bytes: int = 0
    defects: list[PlantedDefect] = field(default_factory=list)


class Landing:
    def __init__(self, root: Path, world: World, diff: Difficulty, timeline: Timeline,
                 streams: Streams) -> None:
        self.root = root
        self.world = world
        self.diff = diff
        self.timeline = timeline
        self.streams = streams
        self._sinks: dict[tuple[str, int], CsvSink] = {}
        self.written = Written()
        rng = streams.rng("landing.truncation")
        picks = [group[int(rng.integers(0, len(group)))] for group in TRUNCATION_CANDIDATES]
        self._truncate = set(picks[: diff.truncated_files])

    def file_name(self, entity: str, extract: int, suffix: str) -> str:
        name = entity.split("/", 1)[1]
        return f"{entity}/{name}_{self.timeline.stamp(extract)}.{suffix}"

    def csv(self, entity: str, extract: int) -> CsvSink:
        key = (entity, extract)
        if key not in self._sinks:
            contract = self.world.contract[entity]
            order = contract.column_names
            if extract > 0 and entity in self.diff.reordered_entities:
                order = list(reversed(order))
            self._sinks[key] = CsvSink(
                root=self.root, rel_path=self.file_name(entity, extract, "csv"),
                contract=contract, column_order=order,
                bom=extract == 0 and entity in self.diff.bom_entities, decimals=DECIMALS)
        return self._sinks[key]

    def append(self, entity: str, extract: int, data: dict, tz: object = "+00:00") -> None:
        self.csv(entity, extract).append(data, tz)

    def parquet(self, entity: str, extract: int, data: dict) -> None:
        contract = self.world.contract[entity]
        rel = self.file_name(entity, extract, "parquet")
        table = parquet_table(contract, data, contract.column_names)
        self.written.bytes += write_parquet(self.root / rel, table)
        self.written.rows[rel] = table.num_rows

    def finish(self, progress: Callable[[str], None]) -> Written:
        """Plant malformed rows into every CSV and write the final files."""
        for key in sorted(self._sinks):
            sink = self._sinks[key]
            rng = self.streams.rng("defects." + sink.rel_path)
            planted, size = plant(sink, rng, self.diff, truncate=key in self._truncate)
            self.written.defects.extend(planted)
            self.written.bytes += size
            self.written.rows[sink.rel_path] = sink.rows + len(planted)
        progress(f"planted {len(self.written.defects)} malformed rows in "
                 f"{len(self._sinks)} CSV files")
        return self.written

    def discard(self) -> None:
        for sink in self._sinks.values():
            sink.discard()

