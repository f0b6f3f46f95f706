"""Asset keys and groups for dbt resources come from the dbt folder structure: no Python per model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster import AssetSpec
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings


class SegmentsDbtTranslator(DagsterDbtTranslator):
    def __init__(self) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project) -> AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] == "source":
            return spec  # key [source_name, table]: the ingest / identity assets own these
        if props["resource_type"] == "seed":
            return spec.replace_attributes(group_name="seeds")
        # models/<layer>/... -> group <layer> (staging, intermediate, marts)
        parts = props.get("fqn", [])
        layer = parts[1] if len(parts) > 2 else "marts"
        return spec.replace_attributes(group_name=layer)
