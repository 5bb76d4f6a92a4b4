/* Commands whose area has not landed yet. Each area moves its command out of
 * here into its own cmd_<area>.c (and deletes the line) when it lands. */
#include <stdio.h>
#include "ns_commands.h"

static int not_yet(const char *name) {
  fprintf(stderr, "nsentry: '%s' is not available in this build yet\n", name);
  return 2;
}
#define NOT_YET(fn) int fn(int argc, char **argv, ns_config *cfg) { (void)argc; (void)cfg; return not_yet(argv[0]); }
NOT_YET(cmd_import)
NOT_YET(cmd_synth)
NOT_YET(cmd_prep)
NOT_YET(cmd_segments)
NOT_YET(cmd_demo)
NOT_YET(cmd_cluster)
NOT_YET(cmd_match)
NOT_YET(cmd_train)
NOT_YET(cmd_score)
NOT_YET(cmd_eval)
NOT_YET(cmd_library)
NOT_YET(cmd_sacct)
NOT_YET(cmd_doctor)
