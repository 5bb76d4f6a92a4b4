#ifndef NS_HOSTLIST_H
#define NS_HOSTLIST_H
/* placeholder: module under construction */
#endif
