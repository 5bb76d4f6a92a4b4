#ifndef NS_CLUST_H
#define NS_CLUST_H
/* placeholder: module under construction */
#endif
