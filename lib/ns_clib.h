#ifndef NS_CLIB_H
#define NS_CLIB_H
/* placeholder: module under construction */
#endif
