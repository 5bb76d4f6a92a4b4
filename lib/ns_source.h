#ifndef NS_SOURCE_H
#define NS_SOURCE_H
/* placeholder: module under construction */
#endif
