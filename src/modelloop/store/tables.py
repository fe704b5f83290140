"""The relational schema, as SQLAlchemy Core tables (one metadata for every aggregate).

Times are integers in milliseconds since the epoch, ids are 32-char hex strings. The migrations in
``migrations/versions`` create exactly this schema; ``tests/store/test_migrations.py`` proves it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

experiments = Table(
    "experiments",
    metadata,
    Column("experiment_id", String(32), primary_key=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger, nullable=True),  # deleted (restorable) when set
    Column("updated_at", BigInteger, nullable=True),  # last change; null: never changed (0013)
)

# Free-form labels on an experiment, as on a run (migration 0011).
experiment_tags = Table(
    "experiment_tags",
    metadata,
    Column("experiment_id", String(32), ForeignKey("experiments.experiment_id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("experiment_id", String(32), ForeignKey("experiments.experiment_id"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger, nullable=True),
    Column("parent_run_id", String(32), ForeignKey("runs.run_id"), nullable=True),
    Column("user", String(256), nullable=False),
    Column("source", Text, nullable=False),  # JSON: git commit, dirty flag, diff hash, entry point
    Column("environment", Text, nullable=False),  # JSON: python and key package versions
    Column("error", Text, nullable=True),  # why a FAILED run failed
    Column("deleted_at", BigInteger, nullable=True),  # deleted (restorable) when set
    Index(None, "experiment_id", "start_time"),
    Index(None, "parent_run_id"),
)

params = Table(
    "params",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

tags = Table(
    "tags",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

# The full history of every metric, in chunks: each logged batch stores, per key, its points as
# packed little-endian arrays (int64 steps and timestamps, float64 values). Reading 100k points is
# then a few rows and ``frombytes`` instead of 100k row objects, and NaN needs no special case.
metrics = Table(
    "metrics",
    metadata,
    Column("chunk_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("run_id", String(32), ForeignKey("runs.run_id"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("count", Integer, nullable=False),
    Column("steps", LargeBinary, nullable=False),
    Column("timestamps", LargeBinary, nullable=False),
    Column("values", LargeBinary, nullable=False),
    Index(None, "run_id", "key"),
)

# The point with the highest (step, timestamp) per run and key: what search filters and sorts on.
latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("value", Float(precision=53), nullable=True),
    Index(None, "key", "value"),
)

# The datasets a run took as inputs, as an MLflow client describes them (migration 0011): a
# dataset is named by (name, digest) per run, logged once; ``tags`` is a JSON object (its context).
run_inputs = Table(
    "run_inputs",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("name", String(500), primary_key=True),
    Column("digest", String(64), primary_key=True),
    Column("source_type", String(64), nullable=False),
    Column("source", Text, nullable=False),
    Column("schema", Text, nullable=True),
    Column("profile", Text, nullable=True),
    Column("tags", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# A run's artifacts: logical path -> content digest in the blob store.
artifacts = Table(
    "artifacts",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# A model an MLflow client logged (migration 0012): its files are artifacts of ``run_id`` under
# ``models/<model_id>/`` (the source run's, or a run created for it when it had none), so the
# registry and serving read them like any run's model. ``tags`` and ``params`` are JSON objects.
logged_models = Table(
    "logged_models",
    metadata,
    Column("model_id", String(40), primary_key=True),
    Column("experiment_id", String(32), ForeignKey("experiments.experiment_id"), nullable=False),
    Column("run_id", String(32), ForeignKey("runs.run_id"), nullable=False),
    Column("source_run_id", String(32), ForeignKey("runs.run_id"), nullable=True),
    Column("name", String(256), nullable=False),
    Column("model_type", String(256), nullable=True),
    Column("status", String(16), nullable=False),  # PENDING | READY | FAILED
    Column("status_message", Text, nullable=True),
    Column("tags", Text, nullable=False),
    Column("params", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger, nullable=True),
    Index(None, "experiment_id", "created_at"),
)

# The logged models a run produced, at which step (MLflow's run outputs, migration 0012).
run_outputs = Table(
    "run_outputs",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("model_id", String(40), ForeignKey("logged_models.model_id"), primary_key=True),
    Column("step", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# The logged models a run took as inputs (MLflow's run model inputs, migration 0014): an
# evaluation run names the model it scored.
run_model_inputs = Table(
    "run_model_inputs",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("model_id", String(40), ForeignKey("logged_models.model_id"), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
)

# Metric points a run logged for a logged model, optionally on a dataset (MLflow 3's model
# metrics, migration 0014). The run keeps the same points in its own history; this is the
# model's view of them, one row per point (few: evaluations, not training curves). NaN is null.
logged_model_metrics = Table(
    "logged_model_metrics",
    metadata,
    Column("metric_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("model_id", String(40), ForeignKey("logged_models.model_id"), nullable=False),
    Column("run_id", String(32), ForeignKey("runs.run_id"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Float(precision=53), nullable=True),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("dataset_name", String(500), nullable=True),
    Column("dataset_digest", String(64), nullable=True),
    Index(None, "model_id", "key"),
)

# -- registry (migration 0002) ------------------------------------------------------------------
# JSON columns are text (the same on both databases). Versions number from 1 per model; the
# registry serialises its writes (see ``modelloop.audit.lock``), so ``max(version) + 1`` is safe.

registered_models = Table(
    "registered_models",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("description", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

model_tags = Table(
    "model_tags",
    metadata,
    Column("name", String(256), ForeignKey("registered_models.name"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("name", String(256), ForeignKey("registered_models.name"), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("run_id", String(32), ForeignKey("runs.run_id"), nullable=False),
    Column("artifact_path", String(1024), nullable=False),
    Column("flavor", String(64), nullable=True),
    Column("signature", Text, nullable=True),  # JSON
    Column("status", String(16), nullable=False),  # READY | ARCHIVED
    Column("description", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("metrics", Text, nullable=False),  # JSON object
    Column("dataset_digests", Text, nullable=False),  # JSON object: role -> sha256
    Column("package_digest", String(64), nullable=False),
    Index(None, "run_id"),
)

model_version_tags = Table(
    "model_version_tags",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    ForeignKeyConstraint(["name", "version"], ["model_versions.name", "model_versions.version"]),
)

aliases = Table(
    "aliases",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(256), nullable=False),
    ForeignKeyConstraint(["name", "version"], ["model_versions.name", "model_versions.version"]),
)

alias_requests = Table(
    "alias_requests",
    metadata,
    Column("request_id", String(32), primary_key=True),
    Column("name", String(256), ForeignKey("registered_models.name"), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("requested_by", String(256), nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", String(16), nullable=False),  # PENDING | APPROVED | REJECTED | CANCELLED
    Column("created_at", BigInteger, nullable=False),
    Column("decided_by", String(256), nullable=True),
    Column("decided_at", BigInteger, nullable=True),
    Column("decision_reason", Text, nullable=True),
    Index(None, "status", "name"),
)

# Append-only and hash-chained (``modelloop.audit``): ``seq`` is assigned by the appender as the
# previous seq + 1 under the audit lock, so a gap always means a deleted event.
audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time", BigInteger, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(64), nullable=False),
    Column("object_type", String(32), nullable=False),
    Column("object_id", String(512), nullable=False),
    Column("before", Text, nullable=True),  # canonical JSON
    Column("after", Text, nullable=True),  # canonical JSON
    Column("reason", Text, nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),  # HMAC-SHA256 under key_id (sha256 if NULL)
    Column("key_id", String(16), nullable=True),  # migration 0010; NULL: written before keys
    Index(None, "object_type", "object_id"),
)

# The newest event's (seq, hash), written with every append: a truncated tail no longer matches.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # viewer | editor | approver | admin
    Column("created_at", BigInteger, nullable=False),
    Column("disabled", Boolean, nullable=False),
)

# -- serving (created here, written by ``modelloop.serving``) -----------------------------------

deployments = Table(
    "deployments",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("config", Text, nullable=False),  # JSON
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(256), nullable=False),
)

feedback = Table(
    "feedback",
    metadata,
    Column("prediction_id", String(36), primary_key=True),
    Column("deployment", String(256), nullable=True),
    Column("label", Float(precision=53), nullable=True),
    Column("value_text", Text, nullable=True),
    Column("received_at", BigInteger, nullable=False),
    Column("received_by", String(256), nullable=False),
    Index(None, "received_at"),
)

# -- datasets ------------------------------------------------------------------------------------

datasets = Table(
    "datasets",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("description", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

# One row per distinct content of a dataset: the same content logged again is the same version.
dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("name", String(256), ForeignKey("datasets.name"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("digest", String(64), nullable=False),  # of the canonical content
    Column("artifact_digest", String(64), nullable=False),  # the Parquet blob
    Column("num_rows", BigInteger, nullable=False),
    Column("num_columns", Integer, nullable=False),
    Column("schema", Text, nullable=False),  # JSON
    Column("profile", Text, nullable=False),  # JSON
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("run_id", String(32), ForeignKey("runs.run_id"), nullable=True),
    Column("description", Text, nullable=True),  # what this version is (the dataset's is v1's)
    UniqueConstraint("name", "digest"),
)

# One check of a version against a contract (ml.log_dataset(contract=...), modelloop datasets
# validate): the contract as its configuration, the report, and who checked it when.
dataset_validations = Table(
    "dataset_validations",
    metadata,
    Column("validation_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("contract", Text, nullable=False),  # JSON: Contract.to_dict()
    Column("checks", Text, nullable=False),  # JSON list: the names of its custom Python checks
    Column("report", Text, nullable=False),  # JSON: ValidationReport.to_dict()
    Column("ok", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False),
    ForeignKeyConstraint(
        ["name", "version"], ["dataset_versions.name", "dataset_versions.version"]
    ),
    Index(None, "name", "version"),
)

# -- pipelines -----------------------------------------------------------------------------------

# A successful step execution, found again by its cache key (code, params, inputs, environment).
step_cache = Table(
    "step_cache",
    metadata,
    Column("cache_key", String(64), primary_key=True),
    Column("step_name", String(256), nullable=False),
    Column("run_id", String(32), ForeignKey("runs.run_id"), nullable=False),
    Column("outputs", Text, nullable=False),  # JSON: output name -> {kind, digest, ...}
    Column("created_at", BigInteger, nullable=False),
)

# What was made from what: (source) --relation--> (target), e.g. a dataset version that a run
# consumed ("input"), an artifact or model version that a run produced ("output").
lineage_edges = Table(
    "lineage_edges",
    metadata,
    Column("edge_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("source_kind", String(32), nullable=False),  # run | artifact | dataset | model_version
    Column("source_id", String(512), nullable=False),
    Column("target_kind", String(32), nullable=False),
    Column("target_id", String(512), nullable=False),
    Column("relation", String(32), nullable=False),  # input | output
    Column("created_at", BigInteger, nullable=False),
    Index(None, "source_kind", "source_id"),
    Index(None, "target_kind", "target_id"),
)

# -- monitoring ----------------------------------------------------------------------------------

monitors = Table(
    "monitors",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("config", Text, nullable=False),  # JSON
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(256), nullable=False),
)

# One check of one window: drift or performance, of the deployment as a whole (model_version 0)
# or of one version. Written with its values and alert changes in one transaction; the unique
# key makes a window computed twice (two schedulers, a re-run) a no-op.
monitor_windows = Table(
    "monitor_windows",
    metadata,
    Column("window_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("monitor", String(256), ForeignKey("monitors.name"), nullable=False),
    Column("kind", String(16), nullable=False),  # drift | performance
    Column("model_version", Integer, nullable=False),
    Column("window_start", BigInteger, nullable=False),  # ms since the epoch, inclusive
    Column("window_end", BigInteger, nullable=False),  # exclusive
    Column("status", String(32), nullable=False),
    Column("n_predictions", BigInteger, nullable=False),
    Column("report", Text, nullable=False),  # JSON
    Column("computed_at", BigInteger, nullable=False),
    UniqueConstraint(
        "monitor", "kind", "model_version", "window_start", "window_end", name="uq_monitor_windows"
    ),
)

# The numbers of a window, one row each: what time series and alert rules read.
monitor_values = Table(
    "monitor_values",
    metadata,
    Column("window_id", BigInteger, ForeignKey("monitor_windows.window_id"), primary_key=True),
    Column("metric", String(300), primary_key=True),
    Column("value", Float(precision=53), nullable=False),
)

# At most one firing alert per (monitor, rule): later breaches update it instead of repeating.
alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("monitor", String(256), ForeignKey("monitors.name"), nullable=False),
    Column("rule", String(256), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("state", String(16), nullable=False),  # firing | resolved
    Column("metric", String(300), nullable=False),
    Column("condition", String(64), nullable=False),  # e.g. "> 0.3"
    Column("value", Float(precision=53), nullable=False),  # the latest window's
    Column("first_window", BigInteger, nullable=False),  # start of the first breaching window
    Column("last_window", BigInteger, nullable=False),  # start of the latest window seen
    Column("breaches", Integer, nullable=False),
    Column("opened_at", BigInteger, nullable=False),
    Column("resolved_at", BigInteger, nullable=True),
    Column("notified", String(16), nullable=True),  # the last state delivered to webhooks
    Column("deliveries", Text, nullable=True),  # JSON: the last delivery attempts
    Index(None, "monitor", "rule", "state"),
    Index(None, "state", "notified"),
)

# What each serving process answered, per minute and route: requests and errors (4xx/5xx), so
# the web UI can show an error rate without reaching the processes themselves.
serving_stats = Table(
    "serving_stats",
    metadata,
    Column("deployment", String(256), primary_key=True),
    Column("instance", String(128), primary_key=True),  # host:pid:random, one per process
    Column("minute", BigInteger, primary_key=True),  # ms since the epoch, start of the minute
    Column("route", String(32), primary_key=True),
    Column("requests", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False),
    Index(None, "deployment", "minute"),
)

# -- automation ----------------------------------------------------------------------------------

policies = Table(
    "policies",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("config", Text, nullable=False),  # JSON
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(256), nullable=False),
)

# Where each policy's loop stands; changed only together with the audit event that explains it.
policy_state = Table(
    "policy_state",
    metadata,
    Column("name", String(256), ForeignKey("policies.name"), primary_key=True),
    Column("stage", String(32), nullable=False),  # idle | shadow | canary
    Column("challenger_version", Integer, nullable=True),
    Column("champion_version", Integer, nullable=True),
    Column("stage_started_at", BigInteger, nullable=True),
    Column("last_trained_at", BigInteger, nullable=True),
    Column("last_checked_at", BigInteger, nullable=True),
    Column("trainings", Integer, nullable=False),
    Column("request_id", String(64), nullable=True),  # the champion alias request awaited
)

# -- the store itself ----------------------------------------------------------------------------

# Facts about the store as a whole, one row per key: "clock" records whether its data runs on a
# simulated clock and where that clock stands (modelloop.store_clock).
store_properties = Table(
    "store_properties",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),  # JSON
    Column("updated_at", BigInteger, nullable=False),  # wall clock, ms since the epoch
)
