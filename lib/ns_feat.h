#ifndef NS_FEAT_H
#define NS_FEAT_H
/* placeholder: module under construction */
#endif
