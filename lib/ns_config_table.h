/* The one typed configuration table. Each row: section, key, type, default,
 * min, max, choices ('|'-separated, enums only), doc. The same table drives
 * parsing, validation, `--dump-config` and the sample docs/nsentry.conf
 * (regenerate with `nsentry config --sample > docs/nsentry.conf`; a test checks
 * they agree). '#' starts a comment at the start of a line or after a blank.
 * Durations accept ms/s/m/h/d suffixes (bare number = seconds);
 * sizes accept K/M/G (binary). Add keys in your component's section. */
#ifndef NS_CONFIG_TABLE_H
#define NS_CONFIG_TABLE_H

#define NS_CONFIG_TABLE(X)                                                                          \
  /* ---- general ---- */                                                                          \
  X(general, log_level, ENUM, "info", 0, 0, "error|warn|info|debug", "Lowest level that is logged.") \
  X(general, log_syslog, BOOL, "no", 0, 1, "", "Log to syslog (daemon facility) instead of stderr.") \
  X(general, cluster_name, STRING, "cluster", 0, 0, "", "Slurm cluster name; part of every job key.") \
  X(general, db, STRING, "sqlite:/var/lib/nsentry/nsentry.db", 0, 0, "",                            \
    "Database: sqlite:/path/to/file.db or a libpq URI (postgresql://user@host:port/dbname).")       \
  X(general, threads, INT, "0", 0, 256, "", "Worker threads for analytics; 0 = number of online CPUs.") \
  /* ---- import ---- */                                                                           \
  X(import, import_counter_rules, STRING, "", 0, 0, "",                                             \
    "LDMS columns that are cumulative counters: comma-separated globs on schema:metric, first match wins, '!' = gauge; empty = built-in rules (docs/import.md).") \
  X(import, import_join_window, DURATION, "500ms", 0, 3600000, "",                                  \
    "LDMS rows of different sampler files this close in time are joined into one row.")            \
  X(import, import_naive_time, ENUM, "auto", 0, 0, "auto|utc|local",                                \
    "Timestamps without a zone: auto = local time for sacct (as sacct prints them), UTC otherwise.") \
  /* ---- preprocessing ---- */                                                                    \
  X(prep, prep_interval, DURATION, "15s", 1, 86400000, "", "Fixed sampling interval segments are resampled to.") \
  X(prep, prep_max_gap, DURATION, "2m", 0, 86400000, "",                                            \
    "Gaps up to this length are linearly interpolated; longer gaps split the segment.")            \
  X(prep, prep_corr_threshold, DOUBLE, "0.99", 0.5, 1.0, "",                                        \
    "Of each metric pair with Pearson r at or above this on training data, one is dropped.")       \
  X(prep, prep_trim, DOUBLE, "0.05", 0.0, 0.49, "",                                                 \
    "Fraction of training values excluded at each end before mean/sigma are computed.")            \
  X(prep, prep_exclude, STRING, "", 0, 0, "",                                                       \
    "Metrics left out of the models: comma-separated globs on aggregated names (e.g. load5,load15).") \
  X(prep, prep_clip, DOUBLE, "5", 0.1, 1000, "", "Standardised values are clipped to [-clip, clip].") \
  X(prep, prep_min_segment, DURATION, "3m", 0, 604800000, "", "Job or idle segments shorter than this are dropped.") \
  X(prep, prep_aggregate, STRING, "*cpu#_*=mean,*core#_*=mean,*gpu#_*=mean,*numa#_*=sum,*eth#_*=sum,*ib#_*=sum,*nvme#_*=sum", 0, 0, "", \
    "Node-level aggregation rules PATTERN=sum|mean (# = digits, removed; * = any text, kept).")     \
  /* ---- features and clustering ---- */                                                          \
  X(cluster, feat_fs, DOUBLE, "0", 0, 1e6, "",                                                      \
    "Sampling frequency (Hz) passed to the features; 0 = the data's real rate (1/interval).")      \
  X(cluster, clust_linkage, ENUM, "complete", 0, 0, "complete|average|single|ward", "HAC linkage.") \
  X(cluster, clust_k_min, INT, "2", 1, 10000, "", "Smallest cluster count tried by the silhouette search.") \
  X(cluster, clust_k_max, INT, "20", 1, 10000, "", "Largest cluster count tried by the silhouette search.") \
  X(cluster, clust_min_size, INT, "2", 1, 100000, "", "Clusters smaller than this are merged into their nearest neighbour.") \
  X(cluster, clust_representatives, INT, "10", 1, 100000, "", "Members nearest the centroid kept as training representatives (K).") \
  X(cluster, clust_strata, INT, "16", 0, 256, "",                                                     \
    "Sub-patterns found in each job cluster (Ward HAC on up to 512 of its members) so that its model is trained on all of them (train_strata_members); 0 = none.") \
  X(cluster, match_len, DURATION, "1h", 1000, 604800000, "", "Prefix of a segment used to match it to a cluster.") \
  X(cluster, match_radius_factor, DOUBLE, "1.5", 0.1, 100, "",                                       \
    "A segment farther than factor x the cluster's largest member distance is unmatched (new pattern).") \
  /* ---- model ---- */                                                                            \
  X(model, model_d_model, INT, "0", 0, 4096, "", "Model width; 0 = metric count rounded up to a multiple of model_heads.") \
  X(model, model_layers, INT, "3", 1, 32, "", "Encoder layers.")                                    \
  X(model, model_heads, INT, "3", 1, 64, "", "Attention heads.")                                    \
  X(model, model_experts, INT, "3", 1, 64, "", "Experts in each MoE feed-forward block.")           \
  X(model, model_topk, INT, "1", 1, 64, "", "Experts each token is routed to.")                     \
  X(model, model_d_ff, INT, "0", 0, 16384, "", "Expert hidden width; 0 = model_d_model.")           \
  X(model, model_dropout, DOUBLE, "0.1", 0, 0.9, "", "Dropout rate during training.")               \
  X(model, model_window, INT, "64", 2, 4096, "", "Time points per training/inference window (T).")  \
  X(model, model_batch, INT, "16", 1, 4096, "", "Windows per training batch (B).")                  \
  X(model, model_epochs, INT, "30", 1, 100000, "", "Maximum training epochs.")                      \
  X(model, model_patience, INT, "5", 0, 1000, "", "Early stopping: epochs without validation improvement; 0 = off.") \
  X(model, model_lr, DOUBLE, "1e-3", 1e-7, 1, "", "AdamW learning rate.")                           \
  X(model, model_weight_decay, DOUBLE, "0.01", 0, 1, "", "AdamW weight decay.")                    \
  X(model, model_grad_clip, DOUBLE, "1.0", 0, 1e6, "", "Global gradient-norm clip; 0 = off.")      \
  X(model, model_aux_weight, DOUBLE, "0.01", 0, 10, "", "Weight of the MoE load-balancing loss.")   \
  X(model, model_seed, INT, "42", 0, 2147483647, "", "Seed for initialisation, shuffling and dropout.") \
  X(model, model_between_pos, BOOL, "yes", 0, 1, "", "Learned between-segment position embedding (off = ablation C4).") \
  X(model, model_moe, BOOL, "yes", 0, 1, "", "Sparse MoE feed-forward (off = dense FFN, ablation C5).") \
  X(model, model_precision, ENUM, "auto", 0, 0, "fp32|bf16|auto",                                   \
    "Scoring arithmetic (training is fp32): bf16 is ~2x faster on AVX512-BF16 CPUs, scores move ~0.5 % RMS; auto = bf16 where the CPU has it, else fp32.") \
  /* ---- detection and training pipeline ---- */                                                  \
  X(detect, detect_k, DOUBLE, "3", 0.5, 100, "", "Change rule: score above mean + k*sigma of the trailing window.") \
  X(detect, detect_window, DURATION, "15m", 60000, 86400000, "", "Change rule: trailing window length (time, not points).") \
  X(detect, detect_noise_quantile, DOUBLE, "0.999", 0, 1, "",                                          \
    "Change rule counts only where the score exceeds this quantile of the cluster's training scores.") \
  X(detect, detect_level_quantile, DOUBLE, "0.999", 0.5, 1, "", "Level rule: quantile of the cluster's training scores.") \
  X(detect, detect_level_factor, DOUBLE, "1.5", 0.1, 1000, "", "Level rule: factor applied to that quantile.") \
  X(detect, detect_level_min_duration, DURATION, "1m", 0, 86400000, "", "Level rule: minimum duration above the level.") \
  X(detect, detect_min_interval, DURATION, "0", 0, 86400000, "", "Anomalous intervals shorter than this are dropped.") \
  X(detect, train_robust, BOOL, "yes", 0, 1, "", "Contamination-robust training in rounds (Refine).") \
  X(detect, train_robust_percentile, DOUBLE, "95", 50, 100, "", "Each round drops the kept windows above this percentile of their relative error.") \
  X(detect, train_robust_rounds, INT, "5", 1, 100, "", "Maximum robust-training rounds (each retrains from scratch on the kept windows).") \
  X(detect, train_robust_relative, DOUBLE, "1.5", 0, 1e6, "",                                          \
    "Robust rounds rank a window's error relative to its peers' error at the same times (without peers: its own segment's median window error) and drop only windows above the percentile and this multiple; 0 = absolute error.") \
  X(detect, train_robust_peers, INT, "8", 0, 64, "",                                                   \
    "Peer segments (the job's other nodes; idle: other nodes idle at the time) whose error at the same times a training window and a calibration stretch are judged against; 0 = own segment only.") \
  X(detect, train_calib_robust, BOOL, "yes", 0, 1, "",                                                  \
    "Thresholds leave out a far upper mode of the calibration scores (at most 5 %) and the stretches the level rule itself flags.") \
  X(detect, train_calib_relative, DOUBLE, "5", 0, 1e6, "",                                            \
    "With train_calib_robust: calibration also leaves out stretches (>= detect_level_min_duration) above this multiple of their own segment's median score; 0 = off.") \
  X(detect, train_calib_peer_relative, DOUBLE, "3", 0, 1e6, "",                                       \
    "With train_calib_robust and train_robust_peers: calibration also leaves out stretches (>= detect_level_min_duration) above this multiple of their peers' score at the same times; 0 = off.") \
  X(detect, train_calib_members, INT, "32", 1, 100000, "",                                           \
    "Most held-out member segments (not trained on, spread over the cluster) whose scores calibrate a cluster's thresholds.") \
  X(detect, train_min_windows, INT, "512", 0, 1000000, "",                                            \
    "A cluster whose representatives give fewer training windows is given further members too, evenly spaced in distance rank.") \
  X(detect, train_max_series, INT, "200", 1, 100000, "", "Most member segments one cluster's model trains on.") \
  X(detect, train_strata_members, INT, "2", 0, 64, "",                                                \
    "Each sub-pattern of a cluster (clust_strata) that the members above leave with fewer training members is given its most central ones up to this many; 0 = off.") \
  /* ---- ablations and baselines (docs/ablations.md) ---- */                                      \
  X(ablation, ablation_seed, INT, "42", 0, 2147483647, "", "Seed of the C2 random grouping and of the autoencoder baseline.") \
  X(ablation, ablation_cut, DURATION, "1h", 60000, 604800000, "", "C3: length of the equal-length cuts of each node's timeline.") \
  X(ablation, baseline_ae_hidden, INT, "64", 1, 65536, "", "Autoencoder baseline: hidden layer width (h).") \
  X(ablation, baseline_ae_bottleneck, INT, "16", 1, 65536, "", "Autoencoder baseline: bottleneck width (b).") \
  X(ablation, baseline_ae_epochs, INT, "20", 1, 100000, "", "Autoencoder baseline: passes over the training points.") \
  X(ablation, baseline_ae_batch, INT, "256", 1, 1000000, "", "Autoencoder baseline: points per minibatch.") \
  X(ablation, baseline_ae_lr, DOUBLE, "1e-3", 1e-7, 1, "", "Autoencoder baseline: Adam learning rate.") \
  X(ablation, baseline_min_sigma, DOUBLE, "1e-3", 1e-9, 1000, "", "z-score baseline: floor on a metric's sigma.") \
  /* ---- service (nsentryd) ---- */                                                               \
  X(service, listen_addr, STRING, "127.0.0.1", 0, 0, "", "Address nsentryd listens on.")           \
  X(service, listen_port, INT, "8470", 1, 65535, "", "TCP port nsentryd listens on.")              \
  X(service, workers, INT, "2", 1, 256, "", "Scoring worker threads.")                             \
  X(service, http_threads, INT, "4", 1, 1024, "", "HTTP connection threads.")                      \
  X(service, max_body, SIZE, "64M", 1024, 4294967296, "", "Largest accepted request body (after gunzip).") \
  X(service, max_metrics, INT, "4096", 1, 1000000, "", "Most metrics in one segment.")             \
  X(service, max_points, INT, "20000000", 1, 2000000000, "", "Most values (T x M) in one segment.") \
  X(service, ingest_uids, STRING, "0,slurm", 0, 0, "", "Users (names or UIDs) whose MUNGE credential may ingest.") \
  X(service, admin_uids, STRING, "0", 0, 0, "", "Users (names or UIDs) allowed on admin endpoints.") \
  X(service, job_grace, DURATION, "10m", 0, 604800000, "", "A job's verdict is finalised this long after its first node reported, even if nodes are missing.") \
  X(service, verdict_field, ENUM, "admincomment", 0, 0, "admincomment|systemcomment|none", "Slurm accounting field that receives the verdict token.") \
  X(service, slurm_conf, STRING, "", 0, 0, "", "slurm.conf for the verdict writer; empty = Slurm's default lookup.") \
  /* ---- node side (sampler, epilog) ---- */                                                       \
  X(node, sampler_interval, DURATION, "15s", 1000, 3600000, "", "Sampler interval.")              \
  X(node, spool_dir, STRING, "/var/spool/nsentry", 0, 0, "", "Sampler spool, job marks and epilog outbox.") \
  X(node, spool_retention, DURATION, "48h", 60000, 2592000000, "", "Spool keeps at least this much history (ring).") \
  X(node, spool_max_bytes, SIZE, "256M", 65536, 1099511627776, "", "Hard cap on spool size on disk.") \
  X(node, service_url, STRING, "http://127.0.0.1:8470", 0, 0, "", "nsentryd base URL the epilog ships to.") \
  X(node, epilog_timeout, DURATION, "5s", 100, 600000, "", "Total time the epilog hook may spend.") \
  X(node, epilog_source, ENUM, "spool", 0, 0, "spool|prometheus|ldms", "Telemetry source the epilog cuts the job window from.") \
  X(node, prometheus_url, STRING, "http://127.0.0.1:9090", 0, 0, "", "Prometheus base URL (epilog_source=prometheus).") \
  X(node, ldms_dir, STRING, "/var/lib/ldms", 0, 0, "", "Directory of LDMS store_csv files (epilog_source=ldms).") \
  X(node, outbox_max_bytes, SIZE, "64M", 65536, 1099511627776, "", "Outbox cap; oldest entries are dropped (and counted) past it.") \
  X(node, prometheus_selector, STRING, "instance=~\"$node(:[0-9]+)?\"", 0, 0, "",                    \
    "PromQL label matchers selecting one node's series; $node is replaced by the node name.")      \
  X(node, prometheus_queries, STRING, "", 0, 0, "",                                                 \
    "File of 'metric = PromQL' lines ($sel = selector, $rate = rate window); empty = built-in node_exporter set.") \
  X(node, munge_socket, STRING, "", 0, 0, "", "MUNGE socket (epilog credentials, nsentryd, doctor); empty = the libmunge default.") \
  X(node, epilog_detach, BOOL, "no", 0, 1, "",                                                      \
    "Run as slurmd Epilog=: return to slurmd at once and ship in the background.")

#endif
