"""The model registry: registered models, versions, aliases, approvals, lineage (audited)."""
