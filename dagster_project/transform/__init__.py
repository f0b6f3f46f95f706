"""The dbt project as Dagster sees it: project handle, manifest preparation, translator."""
