"""Write-audit-publish: the only way marts reach BI tools."""

from dagster_project.publish.write_audit_publish import PublishResult, publish_marts

__all__ = ["PublishResult", "publish_marts"]
