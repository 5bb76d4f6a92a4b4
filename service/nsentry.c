/* nsentry: the admin and analytics command line. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ns_build_config.h"
#include "ns_commands.h"
#include "ns_log.h"

static const struct {
  const char *name;
  ns_cmd_fn fn;
  const char *help;
} commands[] = {
    {"config", cmd_config, "print the sample config (--sample) or the effective config (--dump)"},
    {"import", cmd_import, "import telemetry and job lists (nodesentry, ldms, sacct, csv)"},
    {"synth", cmd_synth, "generate a synthetic cluster with labelled anomalies"},
    {"prep", cmd_prep, "fit/apply preprocessing and cut job and idle segments"},
    {"segments", cmd_segments, "list stored segments"},
    {"demo", cmd_demo, "run the end-to-end demo on the embedded default"},
    {"cluster", cmd_cluster, "cluster stored training segments (features + HAC)"},
    {"match", cmd_match, "match a segment to the nearest clusters"},
    {"train", cmd_train, "train the model library"},
    {"score", cmd_score, "score stored segments or files and print verdicts"},
    {"eval", cmd_eval, "evaluate verdicts against labels (paper protocol)"},
    {"library", cmd_library, "list, activate or roll back model libraries"},
    {"sacct", cmd_sacct, "run sacct and add an Anomaly column from the nsentry DB"},
    {"doctor", cmd_doctor, "check a node or site installation and say what to fix"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
  fprintf(f,
          "usage: nsentry [-c FILE] [--db URI] [-s key=value]... [-v] COMMAND [ARGS]\n"
          "       nsentry COMMAND --help\n\n"
          "  -c, --config FILE   configuration file (default $NSENTRY_CONF, then /etc/nsentry/nsentry.conf if present)\n"
          "      --db URI        database (overrides db=)\n"
          "  -s, --set KEY=VALUE override one configuration key\n"
          "  -v, --verbose       debug logging\n"
          "      --version       print the version\n\ncommands:\n");
  for (size_t i = 0; i < NCOMMANDS; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int cmd_config(int argc, char **argv, ns_config *cfg) {
  if (argc == 2 && strcmp(argv[1], "--sample") == 0) return ns_config_write_sample(stdout) ? 1 : 0;
  if (argc == 2 && strcmp(argv[1], "--dump") == 0) return ns_config_dump(cfg, stdout) ? 1 : 0;
  fprintf(argc == 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr,
          "usage: nsentry config --sample | --dump\n");
  return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {{"config", required_argument, 0, 'c'}, {"db", required_argument, 0, 'D'},
                                       {"set", required_argument, 0, 's'},    {"verbose", no_argument, 0, 'v'},
                                       {"help", no_argument, 0, 'h'},         {"version", no_argument, 0, 'V'},
                                       {0, 0, 0, 0}};
  const char *conf_path = getenv("NSENTRY_CONF"), *db = NULL;
  char *sets[256];
  int nsets = 0, verbose = 0, c;
  ns_log_set_ident("nsentry");
  while ((c = getopt_long(argc, argv, "+c:s:vh", opts, NULL)) != -1) {
    switch (c) {
    case 'c': conf_path = optarg; break;
    case 'D': db = optarg; break;
    case 's':
      if (nsets == 256) ns_cli_die(2, "too many --set options");
      sets[nsets++] = optarg;
      break;
    case 'v': verbose = 1; break;
    case 'h': usage(stdout); return 0;
    case 'V': printf("nsentry %s\n", NS_VERSION); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind >= argc) {
    usage(stderr);
    return 2;
  }
  ns_config *cfg = NULL;
  ns_cli_check(ns_config_create(&cfg), "config");
  if (!conf_path && access("/etc/nsentry/nsentry.conf", R_OK) == 0) conf_path = "/etc/nsentry/nsentry.conf";
  if (conf_path) ns_cli_check(ns_config_load_file(cfg, conf_path), "config");
  ns_cli_check(ns_config_apply_args(cfg, nsets, sets), "--set");
  if (db) ns_cli_check(ns_config_set(cfg, "db", db), "--db");
  ns_log_level lvl;
  if (ns_log_parse_level(ns_cfg_str(cfg, NS_CFG_log_level), &lvl)) ns_log_set_level(lvl);
  if (verbose) ns_log_set_level(NS_LOG_DEBUG);

  const char *name = argv[optind];
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp(commands[i].name, name) == 0) {
      int first = optind;
      optind = 0;  // full getopt reset: the subcommand parses its own argv
      int rc = commands[i].fn(argc - first, argv + first, cfg);
      ns_config_free(cfg);
      return rc;
    }
  fprintf(stderr, "nsentry: unknown command '%s'\n", name);
  usage(stderr);
  ns_config_free(cfg);
  return 2;
}
