#ifndef NS_SPOOL_H
#define NS_SPOOL_H
/* placeholder: module under construction */
#endif
