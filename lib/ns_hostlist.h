/* Slurm hostlists: "cn[001-004,010],gpu1" <-> a list of node names.
 *
 * Grammar accepted by ns_hostlist_expand: items separated by top-level
 * commas; an item is text with any number of bracket groups, each holding
 * comma-separated numbers or lo-hi ranges ("a[1-2]b[3,5]" is the product
 * a1b3,a1b5,a2b3,a2b5). A range keeps the zero padding of its lower bound
 * ("[08-10]" -> 08,09,10; "[8-10]" -> 8,9,10). Blanks around items are
 * ignored. Empty items, unbalanced brackets, non-numeric or descending
 * ranges and more than NS_HOSTLIST_MAX names are errors naming the column.
 * Duplicates are kept in order (Slurm keeps them too). */
#ifndef NS_HOSTLIST_H
#define NS_HOSTLIST_H
#include <stddef.h>
#include "ns_api.h"
#include "ns_status.h"

#define NS_HOSTLIST_MAX 1000000

NS_API ns_status ns_hostlist_expand(const char *list, char ***names, size_t *n);
/* Frees an array from ns_hostlist_expand (NULL-safe). */
NS_API void ns_hostlist_free(char **names, size_t n);
/* The inverse: sorted, de-duplicated, ranges grouped by prefix and zero
 * padding ("cn[001-004,010]"); names without a numeric suffix pass through.
 * Caller frees *out. */
NS_API ns_status ns_hostlist_compress(char *const *names, size_t n, char **out);

#endif
