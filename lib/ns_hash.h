/* Hashes and checksums shared by every module: FNV-1a (cache keys, artifact
 * and spool record checksums), CRC-32 (model blobs) and SHA-256 (binding a
 * MUNGE credential to the exact request body). Artifact formats depend on
 * these exact definitions: never change them. */
#ifndef NS_HASH_H
#define NS_HASH_H
#include <stddef.h>
#include <stdint.h>
#include "ns_api.h"

NS_API uint64_t ns_fnv1a64(const void *p, size_t n);
NS_API uint64_t ns_fnv1a64_str(const char *s);
NS_API uint32_t ns_fnv1a32(const void *p, size_t n);
/* IEEE 802.3 CRC-32 (zlib's crc32 of the buffer). */
NS_API uint32_t ns_crc32(const void *p, size_t n);
/* SHA-256 (FIPS 180-4). */
NS_API void ns_sha256(const void *data, size_t n, uint8_t out[32]);
NS_API void ns_sha256_hex(const void *data, size_t n, char hex[65]);
#endif
