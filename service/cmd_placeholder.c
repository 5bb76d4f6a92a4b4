/* Commands whose area has not landed yet. Each area moves its command out of
 * here into its own cmd_<area>.c (and deletes the line) when it lands. */
#include <stdio.h>
#include "ns_commands.h"

static int not_yet(const char *name) {
  fprintf(stderr, "nsentry: '%s' is not available in this build yet\n", name);
  return 2;
}
#define NOT_YET(fn) int fn(int argc, char **argv, ns_config *cfg) { (void)argc; (void)cfg; return not_yet(argv[0]); }
