/* Streaming CSV reading and the fast number and time parsers used by the
 * importers. The reader keeps one line in memory at a time (files of GBs
 * stream through a fixed buffer), splits it into fields in place and reports
 * file, line and column for every error.
 *
 * Dialect: one record per line ("\n" or "\r\n"); a configurable one-byte
 * separator; fields may be double-quoted ("a,b", "" inside = one quote);
 * quoted fields cannot span lines. Blank lines are skipped. A NUL byte is an
 * error (binary input). */
#ifndef NS_CSV_H
#define NS_CSV_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "ns_api.h"
#include "ns_status.h"

typedef struct ns_csv ns_csv;

/* Longest accepted line; longer lines are an NS_ERR_LIMIT error. */
#define NS_CSV_MAX_LINE ((size_t)64 << 20)

/* Open `path` for reading with field separator `sep` (',' or '|' ...). */
NS_API ns_status ns_csv_open(const char *path, char sep, ns_csv **out);
/* Read from an in-memory buffer (not copied; must outlive the reader).
 * `name` is used in error messages. */
NS_API ns_status ns_csv_open_mem(const void *data, size_t n, char sep, const char *name, ns_csv **out);
NS_API void ns_csv_close(ns_csv *r);

/* Next non-blank record. *got = false at end of file. Fields stay valid
 * until the next call. Errors (NUL byte, unterminated quote, I/O, line too
 * long) name file:line:col. */
NS_API ns_status ns_csv_next(ns_csv *r, bool *got);
NS_API size_t ns_csv_nfields(const ns_csv *r);
/* Field i (0-based), NUL-terminated, unquoted; *len may be NULL. */
NS_API const char *ns_csv_field(const ns_csv *r, size_t i, size_t *len);
/* 1-based character column where field i starts in the line. */
NS_API size_t ns_csv_col(const ns_csv *r, size_t i);
/* 1-based line number of the current record. */
NS_API int64_t ns_csv_line(const ns_csv *r);
/* True when the current record is the last one and has no final newline. */
NS_API bool ns_csv_unterminated(const ns_csv *r);
/* The raw text of the current line before splitting is not kept; this is
 * the file name given at open (for error messages). */
NS_API const char *ns_csv_name(const ns_csv *r);
/* Bytes consumed so far (for progress). */
NS_API int64_t ns_csv_offset(const ns_csv *r);
/* Files only: continue reading at the first line that starts at or after
 * byte `offset` (0 = the file's start). Line numbers then count from that
 * line (1 = the first line read after the seek). */
NS_API ns_status ns_csv_seek(ns_csv *r, int64_t offset);

/* Fast decimal parser for s[0..n): [+-]digits[.digits][e[+-]digits],
 * ".5", "5.", and nan / inf / infinity (any case). Leading and trailing
 * blanks are ignored. Correctly rounded (falls back to strtod when the fast
 * paths cannot guarantee it). Returns NS_ERR_PARSE for anything else
 * (including the empty string), without setting an error detail. */
NS_API ns_status ns_parse_double(const char *s, size_t n, double *out);

/* Timestamps: "YYYY-MM-DD[T| ]HH:MM:SS[.fff][Z|+HH:MM|-HH:MM|+HHMM]"
 * (naive times are UTC unless `local`, then the process time zone), or a
 * bare epoch number: values below 1e11 are seconds, larger ones
 * milliseconds (fractions allowed). Returns NS_ERR_PARSE without detail. */
NS_API ns_status ns_parse_time_ms(const char *s, size_t n, bool local, int64_t *out_ms);
/* ms since epoch -> "YYYY-MM-DDTHH:MM:SS[.mmm]Z" (UTC); buf >= 32 bytes. */
NS_API void ns_format_time_ms(int64_t ms, char *buf, size_t n);
/* Days since 1970-01-01 of a proleptic Gregorian date (no range checks). */
NS_API int64_t ns_days_from_civil(int64_t y, unsigned m, unsigned d);

#endif
