-- Per-point anomaly scores and the threshold in force, kept with each node
-- verdict so nsentry-label can chart them without re-scoring.
ALTER TABLE verdicts ADD COLUMN scores BLOB;     -- T float32 LE, or NULL
ALTER TABLE verdicts ADD COLUMN threshold REAL;  -- level-rule threshold used, or NULL
