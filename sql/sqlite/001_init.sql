-- nsentry schema v1 (SQLite). Same logical schema as sql/postgres/001_init.sql;
-- see docs/schema.md. Times are integer milliseconds since the epoch (UTC).
-- Blobs: float32 / int64 little-endian arrays. The migration runner wraps this
-- file in a transaction and records the version in schema_version.

-- Nodes seen per Slurm cluster (filled by raw imports and segments).
CREATE TABLE nodes (
  cluster       TEXT    NOT NULL,
  name          TEXT    NOT NULL,
  first_seen_ms INTEGER,
  last_seen_ms  INTEGER,
  notes         TEXT,
  PRIMARY KEY (cluster, name)
);

-- Slurm jobs; the cluster name is part of every job key.
CREATE TABLE jobs (
  cluster        TEXT    NOT NULL,
  job_id         TEXT    NOT NULL,
  submit_ms      INTEGER,
  start_ms       INTEGER,
  end_ms         INTEGER,
  nnodes         INTEGER NOT NULL DEFAULT 0,
  nodelist       TEXT,
  user_name      TEXT,
  partition_name TEXT,
  account        TEXT,
  state          TEXT,
  tag            TEXT,
  exit_code      INTEGER NOT NULL DEFAULT 0,
  shared         INTEGER NOT NULL DEFAULT 0,
  updated_ms     INTEGER NOT NULL,
  PRIMARY KEY (cluster, job_id)
);
CREATE INDEX jobs_time ON jobs (cluster, start_ms);

-- Metric catalogue: every metric name once, and ordered sets of them shared
-- by every segment or raw chunk with the same columns.
CREATE TABLE metrics (
  id          INTEGER PRIMARY KEY,
  name        TEXT    NOT NULL UNIQUE,
  unit        TEXT,
  is_counter  INTEGER NOT NULL DEFAULT 0,
  description TEXT
);
CREATE TABLE metric_sets (
  id         INTEGER PRIMARY KEY,
  n          INTEGER NOT NULL,
  names_hash TEXT    NOT NULL UNIQUE, -- 64-bit FNV-1a of names, hex (btree-safe key)
  names      TEXT    NOT NULL,        -- the names joined by '\n', in column order
  created_ms INTEGER NOT NULL
);
CREATE TABLE metric_set_members (
  set_id    INTEGER NOT NULL REFERENCES metric_sets (id) ON DELETE CASCADE,
  pos       INTEGER NOT NULL,
  metric_id INTEGER NOT NULL REFERENCES metrics (id),
  PRIMARY KEY (set_id, pos)
);

-- Raw node telemetry as imported, in chunks of consecutive rows.
CREATE TABLE raw_chunks (
  id            INTEGER PRIMARY KEY,
  cluster       TEXT    NOT NULL,
  node          TEXT    NOT NULL,
  t0_ms         INTEGER NOT NULL,
  t1_ms         INTEGER NOT NULL,
  nrows         INTEGER NOT NULL,
  metric_set_id INTEGER NOT NULL REFERENCES metric_sets (id),
  value_bytes   INTEGER NOT NULL CHECK (value_bytes IN (4, 8)),
  ts            BLOB    NOT NULL, -- nrows int64 LE
  vals          BLOB    NOT NULL, -- nrows x M float32 (or float64) LE, NaN = missing
  counters      BLOB,             -- M bytes, 1 = cumulative counter
  labels        BLOB,             -- nrows bytes or NULL
  source        TEXT,
  created_ms    INTEGER NOT NULL,
  UNIQUE (cluster, node, metric_set_id, t0_ms, t1_ms)
);
CREATE INDEX raw_chunks_node_time ON raw_chunks (cluster, node, t0_ms);

-- Preprocessed job/idle windows: a T x M float32 matrix each.
CREATE TABLE segments (
  id            INTEGER PRIMARY KEY,
  cluster       TEXT    NOT NULL,
  node          TEXT    NOT NULL,
  job_id        TEXT,             -- NULL for idle windows
  kind          INTEGER NOT NULL CHECK (kind IN (0, 1)), -- 0 job, 1 idle
  split         TEXT,
  start_ms      INTEGER NOT NULL,
  end_ms        INTEGER NOT NULL,
  interval_ms   INTEGER NOT NULL,
  t             INTEGER NOT NULL,
  m             INTEGER NOT NULL,
  metric_set_id INTEGER NOT NULL REFERENCES metric_sets (id),
  data          BLOB    NOT NULL, -- t x m float32 LE, row-major
  labels        BLOB,             -- t bytes or NULL
  created_ms    INTEGER NOT NULL
);
CREATE UNIQUE INDEX segments_key ON segments (cluster, node, COALESCE(job_id, ''), start_ms, COALESCE(split, ''));
CREATE INDEX segments_time ON segments (start_ms, node);
CREATE INDEX segments_job ON segments (cluster, job_id);

-- Preprocessing parameters (per-metric scaling etc.), versioned per name.
CREATE TABLE prep_params (
  id            INTEGER PRIMARY KEY,
  name          TEXT    NOT NULL,
  version       INTEGER NOT NULL,
  interval_ms   INTEGER,
  metric_set_id INTEGER REFERENCES metric_sets (id),
  params        BLOB,
  created_ms    INTEGER NOT NULL,
  UNIQUE (name, version)
);

-- Expert or imported labels on a node's time range.
CREATE TABLE labels (
  id         INTEGER PRIMARY KEY,
  cluster    TEXT    NOT NULL,
  node       TEXT    NOT NULL,
  job_id     TEXT,
  start_ms   INTEGER NOT NULL,
  end_ms     INTEGER NOT NULL,
  label      INTEGER NOT NULL,
  author     TEXT,
  source     TEXT,
  note       TEXT,
  created_ms INTEGER NOT NULL,
  CHECK (end_ms >= start_ms)
);
CREATE INDEX labels_node_time ON labels (cluster, node, start_ms);

-- Versioned opaque artifacts (preprocessing parameters, libraries, ...).
CREATE TABLE artifacts (
  id         INTEGER PRIMARY KEY,
  kind       TEXT    NOT NULL,
  name       TEXT    NOT NULL,
  version    INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  data       BLOB    NOT NULL,
  UNIQUE (kind, name, version)
);

-- ---- tables owned by later areas (sketched now; they may extend them) ----

-- A trained model library (one version of clusters + models + thresholds).
CREATE TABLE model_libraries (
  id         INTEGER PRIMARY KEY,
  version    TEXT    NOT NULL UNIQUE, -- e.g. 'r3'
  created_ms INTEGER NOT NULL,
  active     INTEGER NOT NULL DEFAULT 0,
  notes      TEXT,
  params     BLOB
);

-- Behaviour clusters (HAC) of one library, job or idle.
CREATE TABLE clusters (
  id         INTEGER PRIMARY KEY,
  library_id INTEGER NOT NULL REFERENCES model_libraries (id) ON DELETE CASCADE,
  kind       INTEGER NOT NULL CHECK (kind IN (0, 1)), -- 0 job, 1 idle
  label      TEXT,
  size       INTEGER NOT NULL DEFAULT 0,
  radius     REAL,
  centroid   BLOB,  -- float32 LE feature vector
  params     BLOB
);
CREATE INDEX clusters_library ON clusters (library_id);

CREATE TABLE cluster_members (
  cluster_id     INTEGER NOT NULL REFERENCES clusters (id) ON DELETE CASCADE,
  segment_id     INTEGER NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
  distance       REAL,
  representative INTEGER NOT NULL DEFAULT 0,
  weight         REAL    NOT NULL DEFAULT 1,
  PRIMARY KEY (cluster_id, segment_id)
);
CREATE INDEX cluster_members_segment ON cluster_members (segment_id);

-- One model per cluster of a library.
CREATE TABLE models (
  id            INTEGER PRIMARY KEY,
  library_id    INTEGER NOT NULL REFERENCES model_libraries (id) ON DELETE CASCADE,
  cluster_id    INTEGER REFERENCES clusters (id) ON DELETE CASCADE,
  blob          BLOB,
  needs_retrain INTEGER NOT NULL DEFAULT 0,
  created_ms    INTEGER NOT NULL
);
CREATE INDEX models_library ON models (library_id, cluster_id);

-- Per job-node verdict.
CREATE TABLE verdicts (
  id            INTEGER PRIMARY KEY,
  cluster       TEXT    NOT NULL,
  job_id        TEXT    NOT NULL,
  node          TEXT    NOT NULL,
  segment_id    INTEGER REFERENCES segments (id) ON DELETE SET NULL,
  anomalous     INTEGER NOT NULL,
  score_max     REAL,
  score_mean    REAL,
  new_pattern   INTEGER NOT NULL DEFAULT 0,
  pattern_id    INTEGER REFERENCES clusters (id) ON DELETE SET NULL, -- matched behaviour cluster
  model_version TEXT,
  details       TEXT, -- JSON
  scores        BLOB, -- per-point scores, float32 LE (NULL if not scored)
  threshold     REAL, -- threshold applied
  created_ms    INTEGER NOT NULL,
  UNIQUE (cluster, job_id, node)
);

-- Per job verdict: final once every node reported (or the deadline passed).
CREATE TABLE job_verdicts (
  cluster        TEXT    NOT NULL,
  job_id         TEXT    NOT NULL,
  state          TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'final')),
  anomalous      INTEGER NOT NULL DEFAULT 0,
  nodes_reported INTEGER NOT NULL DEFAULT 0,
  nodes_expected INTEGER NOT NULL DEFAULT 0,
  missing_nodes  TEXT,  -- hostlist
  token          TEXT,  -- text written to Slurm accounting
  created_ms     INTEGER NOT NULL,
  finalized_ms   INTEGER,
  PRIMARY KEY (cluster, job_id)
);
CREATE INDEX job_verdicts_state ON job_verdicts (state);

-- Durable scoring queue shared by nsentryd workers.
CREATE TABLE score_queue (
  id          INTEGER PRIMARY KEY,
  cluster     TEXT    NOT NULL,
  job_id      TEXT,
  node        TEXT    NOT NULL,
  segment_id  INTEGER NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
  state       TEXT    NOT NULL DEFAULT 'pending'
              CHECK (state IN ('pending', 'leased', 'done', 'failed')),
  attempts    INTEGER NOT NULL DEFAULT 0,
  lease_owner TEXT,
  lease_until INTEGER,
  created_ms  INTEGER NOT NULL,
  updated_ms  INTEGER,
  error       TEXT,
  UNIQUE (segment_id)
);
CREATE INDEX score_queue_state ON score_queue (state, id);

-- Pending writes to Slurm accounting (AdminComment), retried with backoff.
CREATE TABLE slurm_outbox (
  id         INTEGER PRIMARY KEY,
  cluster    TEXT    NOT NULL,
  job_id     TEXT    NOT NULL,
  token      TEXT    NOT NULL,
  attempts   INTEGER NOT NULL DEFAULT 0,
  next_try   INTEGER NOT NULL,
  last_error TEXT,
  created_ms INTEGER NOT NULL,
  UNIQUE (cluster, job_id)
);
CREATE INDEX slurm_outbox_next ON slurm_outbox (next_try);
