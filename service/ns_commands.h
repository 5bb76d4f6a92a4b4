/* Subcommands of `nsentry`, one file per area (cmd_<area>.c). */
#ifndef NS_COMMANDS_H
#define NS_COMMANDS_H
#include "ns_cli.h"

int cmd_config(int argc, char **argv, ns_config *cfg);   /* nsentry.c */
int cmd_import(int argc, char **argv, ns_config *cfg);   /* cmd_data.c */
int cmd_synth(int argc, char **argv, ns_config *cfg);    /* cmd_prep.c */
int cmd_prep(int argc, char **argv, ns_config *cfg);     /* cmd_prep.c */
int cmd_segments(int argc, char **argv, ns_config *cfg); /* cmd_data.c */
int cmd_demo(int argc, char **argv, ns_config *cfg);     /* cmd_demo.c */
int cmd_cluster(int argc, char **argv, ns_config *cfg);  /* cmd_clust.c */
int cmd_match(int argc, char **argv, ns_config *cfg);    /* cmd_clust.c */
int cmd_train(int argc, char **argv, ns_config *cfg);    /* cmd_detect.c */
int cmd_score(int argc, char **argv, ns_config *cfg);    /* cmd_detect.c */
int cmd_eval(int argc, char **argv, ns_config *cfg);     /* cmd_detect.c */
int cmd_library(int argc, char **argv, ns_config *cfg);  /* cmd_detect.c */
int cmd_sacct(int argc, char **argv, ns_config *cfg);    /* cmd_service.c */
int cmd_doctor(int argc, char **argv, ns_config *cfg);   /* cmd_node.c */
#endif
