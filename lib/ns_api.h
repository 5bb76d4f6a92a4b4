/* Symbol visibility for libnsentry: the library builds with -fvisibility=hidden,
 * so only declarations marked NS_API are exported from the shared object. */
#ifndef NS_API_H
#define NS_API_H
#if defined(__GNUC__)
#define NS_API __attribute__((visibility("default")))
#else
#define NS_API
#endif
#endif
