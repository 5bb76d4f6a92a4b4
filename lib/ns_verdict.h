/* The verdict token written into Slurm accounting (AdminComment or
 * SystemComment): `nsentry:v1;verdict=anomalous;score=4.7;nodes=cn012;model=r3`.
 * Keys and values are lower-case ASCII so the token survives tools that
 * lower-case the field (sacctmgr on 22.05); it contains no blanks, so it can
 * sit beside other tools' text, separated by one space. Characters that
 * slurmdbd would paste into SQL unescaped (quotes, backslash, control
 * characters) are never produced and never accepted for writing. */
#ifndef NS_VERDICT_H
#define NS_VERDICT_H
#include <stdbool.h>
#include <stddef.h>
#include "ns_api.h"
#include "ns_status.h"

#define NS_VERDICT_PREFIX "nsentry:v1;"
/* Most anomalous nodes named in a token; the rest are counted (`+N`). */
#define NS_VERDICT_MAX_NODES 8

typedef struct ns_verdict_info {
  const char *verdict;        /* "normal", "anomalous" or "incomplete" */
  double score;               /* largest node score */
  const char *const *nodes;   /* anomalous nodes */
  size_t n_nodes;
  size_t n_missing;           /* nodes that never reported (finalised by grace) */
  const char *model;          /* model library version tag, e.g. "r3" */
} ns_verdict_info;

/* Build the token into a new string. Names are lower-cased and any character
 * outside [a-z0-9._-] is replaced by '_' so the token is always safe. */
NS_API ns_status ns_verdict_token(const ns_verdict_info *v, char **out);

/* True if `s` holds nothing slurmdbd could splice into SQL: no ' " ` \,
 * no control characters (< 0x20 or 0x7f). */
NS_API bool ns_verdict_text_safe(const char *s);

/* Merge `token` into a field's existing content (NULL = empty): every earlier
 * nsentry token (any case, any version) is removed, other text is kept in
 * order, and the token is appended after one space. NS_ERR_INVAL if the
 * existing content or the token is unsafe (see ns_verdict_text_safe). */
NS_API ns_status ns_verdict_merge(const char *existing, const char *token, char **out);

/* Find the nsentry token in a field (case-insensitive). Returns a new string
 * holding just the token, or NS_ERR_NOTFOUND. */
NS_API ns_status ns_verdict_find(const char *field, char **out);

/* Value of `key` in a token ("verdict", "score", ...), case-insensitive,
 * into buf. NS_ERR_NOTFOUND if absent, NS_ERR_RANGE if it does not fit. */
NS_API ns_status ns_verdict_get(const char *token, const char *key, char *buf, size_t n);

#endif
